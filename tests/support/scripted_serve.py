"""`python -m tests.support.scripted_serve --port N`: the CLI's serving path on a scripted engine.

The drain and exit-code tests need a real process (real SIGTERM, real exit status) but not the
real engine: this runs `create_app` + `run_server` exactly as `harmony-proxy serve` does, over a
`ScriptedBackend` that reasons slowly (one token per `--delay` seconds, `max_tokens` honoured,
so a request picks its own length). SIGUSR1 kills the scripted engine.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from proxy.app import create_app
from proxy.backends.scripted import Script, ScriptedBackend
from proxy.config import ProxyConfig
from proxy.conversation import load_encoding
from proxy.lifecycle import Lifecycle, run_server


class _FailingBackend(ScriptedBackend):
    async def start(self) -> None:
        raise RuntimeError("no such checkpoint")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grace", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--fail-start", action="store_true", help="the engine fails to load")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    text = "<|channel|>analysis<|message|>" + "thinking " * 5000 + "<|end|>"
    tokens = load_encoding().encode(text, allowed_special="all")
    backend = (_FailingBackend if args.fail_start else ScriptedBackend)(
        Script([tokens], delay=args.delay)
    )
    config = ProxyConfig(served_model_names=(backend.model_name,), conversation_date="2026-01-15")
    lifecycle = Lifecycle(grace_seconds=args.grace, farewell_seconds=2.0)
    app = create_app(config, backend, lifecycle=lifecycle, exit_on_engine_failure=True)
    signal.signal(signal.SIGUSR1, lambda *_: backend.kill())
    return run_server(app, lifecycle, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    sys.exit(main())
