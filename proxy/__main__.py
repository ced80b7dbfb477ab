"""`python -m proxy serve ...` is the same as `harmony-proxy serve ...`."""

from __future__ import annotations

from proxy.server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
