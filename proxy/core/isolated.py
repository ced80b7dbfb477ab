"""Checks that run in a worker process of their own: large grammar compiles and schema checks.

Planning a request with a large, new tool set runs two checks whose cost grows with the
schemas: JSON Schema validation (jsonschema, pure Python: ~0.7 s for four 500-property tools)
and the grammar compile (xgrammar's C++, which holds the GIL through long stretches: 4 s for a
2,000-property schema). Run in the plan executor's threads they still held the event loop,
which must win the GIL back from them for every step of every other request: `/health` took
130-300 ms while they ran, and one compile alone stalled the loop for 313 ms at a time. Here
they run in one worker process (`python -m proxy.core.isolated`, a JSON line per check each
way), so the threads wait on a pipe without the GIL, and a check that crashes (xgrammar can, on
a pathological schema) costs the worker, which is restarted, not the server. Small inputs, the
usual case, are checked in the calling thread: a few milliseconds, no pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

# Inputs up to this size are checked in the calling thread.
ISOLATE_BYTES = 32 * 1024


def _checks() -> dict[str, Callable[..., str | None]]:
    """What the worker may run: each takes strings and returns an error string or None."""
    from proxy.core.grammar import compile_error
    from proxy.core.json_grammar import compact_ebnf
    from proxy.core.tools import schema_problem

    return {
        "compile_error": compile_error,
        "schema_problem": schema_problem,
        "compact_ebnf": compact_ebnf,  # returns the EBNF text (None: not convertible)
    }


class IsolatedChecks:
    """The worker process, started on first use and restarted if a check kills it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def run(self, check: str, *args: str) -> str | None:
        """`check(*args)` in the worker: its error string, or None."""
        request = json.dumps({"check": check, "args": args}).encode() + b"\n"
        with self._lock:  # one check at a time: the worker is one process
            process = self._process
            if process is None or process.poll() is not None:
                process = self._process = subprocess.Popen(
                    [sys.executable, "-m", "proxy.core.isolated"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(request)
                process.stdin.flush()
                answer = process.stdout.readline()
            except OSError:
                answer = b""
            if not answer:
                process.kill()
                self._process = None
                return "the checker failed on this schema (it may be too complex to enforce)"
        return json.loads(answer)["error"]


_WORKER = IsolatedChecks()


def checked(check: str, *args: str) -> str | None:
    """`check(*args)`: in this thread when its input is small, else in the worker process."""
    if sum(len(a) for a in args) <= ISOLATE_BYTES:
        return _checks()[check](*args)
    return _WORKER.run(check, *args)


def _serve() -> None:
    """The worker's loop: a check per line in, its error (or null) per line out. It runs at a
    lower priority: on a busy host the server's event loop gets the CPU first."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(10)
    checks = _checks()
    for line in sys.stdin.buffer:
        request: dict[str, Any] = json.loads(line)
        error = checks[request["check"]](*request["args"])
        sys.stdout.buffer.write(json.dumps({"error": error}).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    _serve()
