"""`python -m tests.background.serve_process --port N --store LOCATION`: a proxy in a process
of its own (to be killed), on a scripted engine that reasons slowly, keeping its responses in
the store at LOCATION with a short background lease."""

from __future__ import annotations

import argparse

import uvicorn

from proxy.backends.scripted import ScriptedBackend
from proxy.server.app import create_app
from proxy.server.settings import ProxyConfig
from tests.background.support import slow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--lease", type=float, default=1.0)
    args = parser.parse_args()
    backend = ScriptedBackend(slow(0.02))
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date="2026-01-15",
        response_store=args.store,
        reasoning_key_file=args.key_file,
        background_lease_seconds=args.lease,
    )
    uvicorn.run(create_app(config, backend), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
