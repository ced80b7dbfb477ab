"""`harmony-proxy serve` (also `python -m proxy serve`): run the OpenAI-compatible server.

Every flag has an environment variable (HARMONY_PROXY_<FLAG>, list values comma-separated), so
containers can be configured without a command line. Without --model the server builds the tiny
demo model (a gpt-oss-shaped checkpoint that runs on CPU) and serves that.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from proxy.core.gate import Limits
from proxy.server.cli_scale import (
    add_engine_tuning_args,
    add_replica_args,
    build_pool,
    engine_tuning,
)
from proxy.server.settings import ProxyConfig, data_dir, today

ENV_PREFIX = "HARMONY_PROXY_"


def _env(name: str, default: Any = None) -> Any:
    return os.environ.get(ENV_PREFIX + name, default)


def _env_list(name: str) -> list[str]:
    value = _env(name, "")
    return [v.strip() for v in value.split(",") if v.strip()]


def _env_int(name: str) -> int | None:
    value = _env(name)
    return int(value) if value not in (None, "") else None


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harmony-proxy",
        description="OpenAI-compatible /v1/chat/completions for gpt-oss models, over Harmony.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Serve /v1/chat/completions, /v1/models, /health, /ready and /metrics. "
        f"Each flag can also be set as an environment variable {ENV_PREFIX}<FLAG> "
        "(e.g. HARMONY_PROXY_PORT=9000; lists comma-separated).",
    )
    server = serve.add_argument_group("server")
    server.add_argument(
        "--host", default=_env("HOST", "127.0.0.1"), help="interface to bind (default: 127.0.0.1)"
    )
    server.add_argument(
        "--port", type=int, default=int(_env("PORT", "8000")), help="TCP port (default: 8000)"
    )
    server.add_argument(
        "--api-key",
        action="append",
        default=_env_list("API_KEY"),
        help="require `Authorization: Bearer <key>` on /v1 (repeatable); default: no auth",
    )
    server.add_argument(
        "--cors-origin",
        action="append",
        default=_env_list("CORS_ORIGIN"),
        help="allow browser calls from this origin (repeatable, `*` for any); default: CORS off",
    )
    server.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "1")),
        help="proxy processes sharing the port (default: 1); each renders, parses and streams "
        "on its own core, in front of the same replicas (--backend-url) or, without one, of "
        "one engine process this command starts (vLLM's server with the token endpoint); "
        "/metrics shows the totals over all workers",
    )
    server.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        help="log level (default: info); vLLM's own INFO logs show only with `debug`",
    )

    limits = serve.add_argument_group("reliability (see README: Operating it)")
    limits.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=_env_int("MAX_CONCURRENT_REQUESTS") or 256,
        help="requests generating at once (default: 256); more wait in the queue",
    )
    limits.add_argument(
        "--max-queued-requests",
        type=int,
        default=int(_env("MAX_QUEUED_REQUESTS", "512")),
        help="requests waiting for a slot (default: 512); beyond: 429 with Retry-After",
    )
    limits.add_argument(
        "--queue-timeout",
        type=float,
        default=float(_env("QUEUE_TIMEOUT", "60")),
        help="seconds a request may wait for a slot before its 429 (default: 60)",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(_env("MAX_BODY_BYTES", str(8 * 1024 * 1024))),
        help="largest request body accepted, else 413 (default: 8 MiB)",
    )
    limits.add_argument(
        "--max-messages",
        type=int,
        default=int(_env("MAX_MESSAGES", "2048")),
        help="most messages in one request, else 400 (default: 2048)",
    )
    limits.add_argument(
        "--send-timeout",
        type=float,
        default=float(_env("SEND_TIMEOUT", "30")),
        help="drop a streaming client that accepts no data for this many seconds and abort "
        "its generation (default: 30)",
    )
    limits.add_argument(
        "--drain-grace",
        type=float,
        default=float(_env("DRAIN_GRACE", "30")),
        help="on SIGTERM: seconds open requests get to finish before they are ended with an "
        "error event and [DONE] (default: 30; keep it below the pod's "
        "terminationGracePeriodSeconds)",
    )

    prompt = serve.add_argument_group("prompt")
    prompt.add_argument(
        "--date",
        default=_env("DATE", None),
        help="`Current date:` in the system prompt, YYYY-MM-DD (default: today, pinned at startup)",
    )
    prompt.add_argument(
        "--reasoning-effort",
        default=_env("REASONING_EFFORT", "medium"),
        choices=["low", "medium", "high"],
        help="effort for requests that set none (default: medium)",
    )
    prompt.add_argument(
        "--default-max-tokens",
        type=int,
        default=_env_int("DEFAULT_MAX_TOKENS") or 8192,
        help="completion budget when a request sets none (default: 8192, or the rest of the "
        "context if smaller; 0: the rest of the context, as OpenAI and vLLM do)",
    )
    prompt.add_argument(
        "--enforce-auto-tool-calls",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("ENFORCE_AUTO_TOOL_CALLS", True),
        help='under tool_choice "auto", constrain calls by grammar to declared functions with '
        "schema-valid arguments (default: on; off still enforces `strict` tools and never "
        "returns an undeclared call)",
    )

    responses = serve.add_argument_group("responses API (/v1/responses)")
    responses.add_argument(
        "--response-store",
        default=_env("RESPONSE_STORE", None),
        help="where stored responses live: a file path or sqlite:///path (embedded SQLite), or "
        "postgresql://user@host/db for several proxy replicas (default: "
        "$XDG_DATA_HOME/harmony-proxy/responses.sqlite3, i.e. ~/.local/share/...)",
    )
    responses.add_argument(
        "--response-retention",
        type=int,
        default=_env_int("RESPONSE_RETENTION") if _env("RESPONSE_RETENTION") else 10_000,
        help="keep at most this many stored responses, oldest dropped first (default: 10000; "
        "0: no limit)",
    )
    responses.add_argument(
        "--response-max-age-days",
        type=float,
        default=float(_env("RESPONSE_MAX_AGE_DAYS", "30")),
        help="drop stored responses older than this (default: 30, as OpenAI; 0: never)",
    )
    responses.add_argument(
        "--reasoning-key",
        default=_env("REASONING_KEY", None),
        help="base64 32-byte key sealing reasoning for `include: [reasoning.encrypted_content]`; "
        "give every replica the same one (default: the key file)",
    )
    responses.add_argument(
        "--reasoning-key-file",
        default=_env("REASONING_KEY_FILE", None),
        help="file holding the reasoning key, created (mode 0600) if missing (default: "
        "reasoning.key beside a SQLite store, else in the data directory)",
    )

    engine = serve.add_argument_group("engine (vLLM)")
    engine.add_argument(
        "--model",
        default=_env("MODEL", None),
        help="a gpt-oss checkpoint: local path or hub id (default: the bundled demo model)",
    )
    engine.add_argument(
        "--served-model-name",
        default=_env("SERVED_MODEL_NAME", None),
        help="model id clients use (default: the model path/id; the demo model's name without --model)",
    )
    engine.add_argument(
        "--max-model-len",
        type=int,
        default=_env_int("MAX_MODEL_LEN"),
        help="context length, prompt plus completion (default: the checkpoint's)",
    )
    engine.add_argument(
        "--dtype",
        default=_env("DTYPE", "auto"),
        help="weights dtype (default: auto: the checkpoint's; for the demo model on a CPU "
        "without bf16 instructions, float32, which is faster there)",
    )
    engine.add_argument(
        "--tensor-parallel-size",
        type=int,
        default=int(_env("TENSOR_PARALLEL_SIZE", "1")),
        help="GPUs to shard the model over (default: 1)",
    )
    engine.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=float(_env("GPU_MEMORY_UTILIZATION", "0.9")),
        help="fraction of GPU memory for weights and KV cache (default: 0.9)",
    )
    engine.add_argument(
        "--cpu-kvcache-space-gib",
        type=int,
        default=_env_int("CPU_KVCACHE_SPACE_GIB") or 1,
        help="KV-cache size in GiB on CPU hosts (default: 1)",
    )
    engine.add_argument(
        "--enforce-eager",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="disable CUDA graphs (default: eager on CPU only)",
    )
    add_engine_tuning_args(engine)
    add_replica_args(serve)
    return parser


def proxy_config(args: argparse.Namespace, served_name: str | None) -> ProxyConfig:
    return ProxyConfig(
        served_model_names=(served_name,) if served_name else (),
        api_keys=tuple(args.api_key),
        cors_origins=tuple(args.cors_origin),
        conversation_date=args.date or today(),
        default_reasoning_effort=args.reasoning_effort,
        default_max_tokens=args.default_max_tokens or None,
        enforce_auto_tool_calls=args.enforce_auto_tool_calls,
        max_concurrent_requests=args.max_concurrent_requests or None,
        max_queued_requests=args.max_queued_requests,
        queue_timeout_seconds=args.queue_timeout,
        max_body_bytes=args.max_body_bytes or None,
        limits=Limits(max_messages=args.max_messages or None),
        send_timeout_seconds=args.send_timeout or None,
        response_store=args.response_store or str(data_dir() / "responses.sqlite3"),
        response_retention_count=args.response_retention or None,
        response_retention_seconds=(args.response_max_age_days * 86400.0) or None,
        reasoning_key=args.reasoning_key,
        reasoning_key_file=args.reasoning_key_file,
    )


def _progress(message: str) -> None:
    print(f"[harmony-proxy] {message}", flush=True)


def _quiet_engine_logs(log_level: str) -> None:
    """vLLM logs dozens of INFO lines while loading; show them only at `--log-level debug`.

    Set before vLLM is imported (its logging is configured at import, also in the engine's
    own process, which inherits the environment).
    """
    if log_level.lower() != "debug":
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        # Modules imported before vLLM configures its logging log through the root logger.
        logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"])


def serve(args: argparse.Namespace, sockets: list[socket.socket] | None = None) -> int:
    """Serve until drained (exit 0) or until the engine fails or dies (exit 1).

    `sockets`: already bound (a worker of `--workers N`, see proxy/server/workers.py).
    """
    if args.workers > 1:
        if not args.backend_url:
            # The engine in a process of its own, the workers in front of it.
            from proxy.server.engine_process import serve_with_engine_process

            return serve_with_engine_process(args, _progress)
        from proxy.server.workers import serve_workers

        return serve_workers(args)
    _quiet_engine_logs(args.log_level)
    worker = "[%(process)d] " if sockets is not None else ""  # which worker logged it
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {worker}%(name)s: %(message)s",
    )
    if args.log_level.lower() != "debug":
        # One INFO line per replica health check (every few seconds) is noise.
        logging.getLogger("httpx").setLevel(logging.WARNING)

    from proxy.backends.vllm_engine import EngineOptions, VllmBackend
    from proxy.core.conversation import load_encoding
    from proxy.server.app import create_app
    from proxy.server.lifecycle import Lifecycle, freeze_startup_heap, run_server

    started = time.monotonic()
    _progress("Loading the Harmony vocabulary (o200k_harmony)...")
    load_encoding()
    _progress(f"Vocabulary loaded in {time.monotonic() - started:.1f} s")

    if args.backend_url:
        return serve_remote(args, sockets)
    model, served = args.model, args.served_model_name
    # The tiny demo model pads schema-constrained JSON with spaces until max_tokens unless the
    # grammar forbids free whitespace (an engine-wide setting); real checkpoints keep vLLM's default.
    json_without_whitespace = model is None
    if model is None:
        from proxy.demo_model import DEMO_MODEL_NAME, ensure_demo_model

        _progress("No --model given: preparing the bundled demo model (CPU-sized)...")
        model = str(ensure_demo_model(progress=_progress))
        served = served or DEMO_MODEL_NAME
    served = served or model
    options = EngineOptions(
        model=model,
        served_model_name=served,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        cpu_kvcache_space_gib=args.cpu_kvcache_space_gib,
        enforce_eager=args.enforce_eager,
        json_without_whitespace=json_without_whitespace,
        float32_without_cpu_bf16=args.model is None,
        **engine_tuning(args),
        engine_stats=True,
    )
    backend = VllmBackend(options, progress=_progress)
    url = f"http://{_display_host(args.host)}:{args.port}/v1"

    def on_ready() -> None:
        freeze_startup_heap()
        _progress(f"Ready. Point the OpenAI SDK at base_url={url} with model={served!r}")

    lifecycle = Lifecycle(grace_seconds=args.drain_grace)
    app = create_app(
        proxy_config(args, served),
        backend,
        on_ready=on_ready,
        lifecycle=lifecycle,
        exit_on_engine_failure=True,
        engine_stats=True,
    )
    _progress(f"Listening on {url} (engine loading in the background; GET /ready turns 200)")
    code = run_server(app, lifecycle, host=args.host, port=args.port, log_level=args.log_level)
    _progress(f"Stopped (exit code {code})")
    return code


def serve_remote(args: argparse.Namespace, sockets: list[socket.socket] | None = None) -> int:
    """Serve through running vLLM replicas (`--backend-url`): no engine is loaded here.

    Drains on SIGTERM like the in-process server, but replicas that are all down do not end
    the process: they are health-checked and re-admitted when they come back.
    """
    from proxy.server.app import create_app
    from proxy.server.lifecycle import Lifecycle, freeze_startup_heap, run_server

    pool = build_pool(args)
    url = f"http://{_display_host(args.host)}:{args.port}/v1"

    def on_ready() -> None:
        name = args.served_model_name or pool.model_name
        freeze_startup_heap()
        _progress(f"Ready. Point the OpenAI SDK at base_url={url} with model={name!r}")

    lifecycle = Lifecycle(grace_seconds=args.drain_grace)
    app = create_app(
        proxy_config(args, args.served_model_name), pool, on_ready=on_ready, lifecycle=lifecycle
    )
    replicas = ", ".join(r.url for r in pool.replicas)
    _progress(f"Listening on {url} in front of {replicas} (GET /ready turns 200 with one up)")
    code = run_server(
        app, lifecycle, sockets, host=args.host, port=args.port, log_level=args.log_level
    )
    _progress(f"Stopped (exit code {code})")
    return code


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
