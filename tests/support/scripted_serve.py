"""`python -m tests.support.scripted_serve --port N`: the CLI's serving path on a scripted engine.

The drain and exit-code tests need a real process (real SIGTERM, real exit status) but not the
real engine: this runs `create_app` + `run_server` exactly as `harmony-proxy serve` does, over a
`ScriptedBackend` that reasons slowly (one token per `--delay` seconds, `max_tokens` honoured,
so a request picks its own length). SIGUSR1 kills the scripted engine.

`--replay-tokens N` serves instead the realistic completions of `tests/support/replay.py`
(reasoning then an answer, or a tool call when the request has tools; about N tokens each) with
no delay and no per-request records: the instant backend of `benchmarks/bench_ceiling.py`;
with `--pace-ms M`, one token per stream every M ms, handed over in a backlog when the server
falls behind (`benchmarks/bench_paced.py`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.coalesce import StreamInterval
from proxy.core.conversation import load_encoding
from proxy.server.app import create_app
from proxy.server.lifecycle import Lifecycle, freeze_startup_heap, run_server
from proxy.server.settings import ProxyConfig
from tests.support.replay import completion_for


class _FailingBackend(ScriptedBackend):
    async def start(self) -> None:
        raise RuntimeError("no such checkpoint")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--grace", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--fail-start", action="store_true", help="the engine fails to load")
    parser.add_argument("--replay-tokens", type=int, default=0, help="instant realistic replay")
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=0.0,
        help="with --replay-tokens: one token per stream "
        "every M ms, backlogged when the server falls behind (an engine's fixed step)",
    )
    parser.add_argument(
        "--pace-merged",
        action="store_true",
        help="with --pace-ms: tokens due together come as one engine output (vLLM's collector)",
    )
    parser.add_argument(
        "--no-merge-ready-outputs", action="store_true", help="one write per engine output"
    )
    parser.add_argument(
        "--no-merge-when-behind",
        action="store_true",
        help="merge only outputs already waiting, not while the loop runs late",
    )
    parser.add_argument(
        "--loop-lag-relaxed",
        type=float,
        default=ProxyConfig.loop_lag_relaxed_seconds,
        help="seconds between the loop-lag monitor's wake-ups while the loop is on time "
        "(0.02: a fixed 20 ms, for tests that count stalls)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--loop", default="auto", help="uvicorn's loop: auto (uvloop), asyncio")
    parser.add_argument("--http", default="auto", help="uvicorn's http: auto (httptools), h11")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.replay_tokens:
        size = args.replay_tokens
        backend = ScriptedBackend(
            Script(pace=args.pace_ms / 1000),  # (the scripts' pace: what the backend reports)
            model_name="gpt-oss-demo",
            script_for=lambda prompt: Script(
                [list(completion_for(prompt, size))],
                pace=args.pace_ms / 1000,
                pace_merged=args.pace_merged,
            ),
            record=False,
        )
    else:
        text = "<|channel|>analysis<|message|>" + "thinking " * 5000 + "<|end|>"
        tokens = load_encoding().encode(text, allowed_special="all")
        backend = (_FailingBackend if args.fail_start else ScriptedBackend)(
            Script([tokens], delay=args.delay)
        )
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date="2026-01-15",
        loop_lag_relaxed_seconds=args.loop_lag_relaxed,
        stream_interval=StreamInterval(
            merge=not args.no_merge_ready_outputs, when_behind=not args.no_merge_when_behind
        ),
    )
    lifecycle = Lifecycle(grace_seconds=args.grace, farewell_seconds=2.0)
    app = create_app(
        config,
        backend,
        lifecycle=lifecycle,
        exit_on_engine_failure=True,
        on_ready=freeze_startup_heap,  # as the CLI does once the engine is ready
    )
    signal.signal(signal.SIGUSR1, lambda *_: backend.kill())
    level = "warning" if args.log_level == "info" else args.log_level
    return run_server(
        app,
        lifecycle,
        host="127.0.0.1",
        port=args.port,
        log_level=level,
        loop=args.loop,
        http=args.http,
    )


if __name__ == "__main__":
    sys.exit(main())
