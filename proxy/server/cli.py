"""`harmony-proxy serve` (also `python -m proxy serve`): run the OpenAI-compatible server.

Every flag has an environment variable (HARMONY_PROXY_<FLAG>, list values comma-separated), so
containers can be configured without a command line. Without --model the server builds the tiny
demo model (a gpt-oss-shaped checkpoint that runs on CPU) and serves that.

The flags are declared on `Settings` (proxy/server/settings.py); this module turns the command
line and the environment into one `Settings` and serves it. It is the only place that touches
`os.environ`: it reads the configuration from it once, and writes the variables through which
vLLM and torch are told to be quiet (they read them, also in the processes they start).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from proxy.server.cli_scale import build_pool, engine_tuning
from proxy.server.flags import ENV_PREFIX, GROUPS, Flag, SettingsError
from proxy.server.hosted_flags import check_code_interpreter
from proxy.server.settings import Settings, flags

PROG = "harmony-proxy"


def build_parser() -> argparse.ArgumentParser:
    """The `serve` command's parser, one argument per `Settings` flag.

    Defaults are left out of the parsed namespace (`argparse.SUPPRESS`): `Settings.from_sources`
    decides between a given flag, its environment variable and the default.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="OpenAI-compatible /v1/chat/completions for gpt-oss models, over Harmony.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="run the server",
        argument_default=argparse.SUPPRESS,
        description="Serve /v1/chat/completions, /v1/responses, /v1/models, /health, /ready "
        f"and /metrics. Each flag can also be set as an environment variable {ENV_PREFIX}<FLAG> "
        "(e.g. HARMONY_PROXY_PORT=9000; lists comma-separated; booleans 1/true/yes/on or "
        "0/false/no/off; an empty variable counts as unset, except an empty API key, which is "
        "an error). A flag given on the command line wins over its variable; a repeatable "
        "flag adds to its variable's list.",
    )
    groups = {
        title: serve_parser.add_argument_group(title, description)
        for title, description in GROUPS.items()
    }
    for name, spec in flags():
        help_text = f"{spec.help} [{Flag.variable(name)}]"
        group, option = groups[spec.group], Flag.option(name)
        if spec.kind == "list":
            group.add_argument(
                option, dest=name, action="append", metavar=spec.metavar, help=help_text
            )
        elif spec.kind in ("switch", "tristate"):
            group.add_argument(
                option, dest=name, action=argparse.BooleanOptionalAction, help=help_text
            )
        else:
            group.add_argument(
                option,
                dest=name,
                type=spec.convert,
                choices=spec.choices,
                metavar=spec.metavar or (None if spec.choices else name.upper()),
                help=help_text,
            )
    return parser


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """`Settings` from `argv` (`["serve", ...]`) and `environ` (default: the process's).

    A bad flag or variable ends the process with exit code 2 and a message naming it, as
    argparse does for its own errors.
    """
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    given.pop("command")
    try:
        settings = Settings.from_sources(given, os.environ if environ is None else environ)
        if settings.warm_tools:  # a bad file stops the server here, named
            from proxy.server.warm_tools import read_warm_tools  # (the API's tool readers)

            read_warm_tools(settings.warm_tools)
        return settings
    except SettingsError as exc:
        parser.exit(2, f"{PROG} serve: error: {exc}\n")
        raise  # pragma: no cover - parser.exit raises SystemExit


def _progress(message: str) -> None:
    print(f"[{PROG}] {message}", flush=True)


def quiet_engine_output(settings: Settings) -> None:
    """Keep vLLM's (and torch's) start-up and shutdown chatter off the console unless debugging.

    vLLM logs dozens of INFO lines and a screen of WARNINGs while loading, all about choices
    this server made on purpose (eager mode on CPU, no chunked prefill for the demo, no Triton
    on CPU); torch prints C++ warnings (NUMA binding) and deprecation warnings raised from
    vLLM's code. Errors still show. The variables are set before vLLM is imported, here and in
    the processes it starts (the engine core, `serve --workers N`'s engine process), which
    inherit them; a variable the user set wins.
    """
    if settings.debug:
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # torch's C++ warnings (NUMA binding)
    # vLLM spawns its engine processes (always on CPU): they take warning filters from here
    # only. (torch's deprecation FutureWarnings, raised from vLLM's kernel registry.)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    # Modules imported before vLLM configures its logging log through the root logger.
    with contextlib.suppress(ValueError):  # a level vLLM does not know: vLLM reports it
        logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].strip().upper())
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm(\.|$)")


def serve(settings: Settings, sockets: list[socket.socket] | None = None) -> int:
    """Serve until drained (exit 0) or until the engine fails or dies (exit 1).

    `sockets`: already bound (a worker of `--workers N`, see proxy/server/workers.py).
    """
    quiet_engine_output(settings)
    if settings.workers > 1:
        if not settings.backend_url:
            # The engine in a process of its own, the workers in front of it.
            from proxy.server.engine_process import serve_with_engine_process

            if settings.cpu_kvcache_space_gib:  # read by vLLM in the engine process
                os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kvcache_space_gib)
            return serve_with_engine_process(settings, _progress)
        from proxy.server.workers import serve_workers

        return serve_workers(settings)
    worker = "[%(process)d] " if sockets is not None else ""  # which worker logged it
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {worker}%(name)s: %(message)s",
    )
    if not settings.debug:
        # One INFO line per replica health check (every few seconds) is noise.
        logging.getLogger("httpx").setLevel(logging.WARNING)

    from proxy.core.conversation import load_encoding

    started = time.monotonic()
    _progress("Loading the Harmony vocabulary (o200k_harmony)...")
    load_encoding()
    _progress(f"Vocabulary loaded in {time.monotonic() - started:.1f} s")

    if settings.backend_url:
        return serve_remote(settings, sockets)
    return serve_engine(settings)


def serve_engine(settings: Settings) -> int:
    """Serve with the vLLM engine in this process."""
    from proxy.backends.vllm_engine import VllmBackend
    from proxy.backends.vllm_options import EngineOptions
    from proxy.server.app import create_app
    from proxy.server.lifecycle import Lifecycle, freeze_startup_heap, run_server

    model, served = settings.model, settings.served_model_name
    # The tiny demo model pads schema-constrained JSON with spaces until max_tokens unless the
    # grammar forbids free whitespace (an engine-wide setting); real checkpoints keep vLLM's default.
    json_without_whitespace = model is None
    if model is None:
        from proxy.demo_model import DEMO_MODEL_NAME, ensure_demo_model

        _progress("No --model given: preparing the bundled demo model (CPU-sized)...")
        cache = Path(settings.cache) if settings.cache else None
        model = str(ensure_demo_model(cache, progress=_progress))
        served = served or DEMO_MODEL_NAME
    served = served or model
    tuning = engine_tuning(settings)
    if not settings.debug:  # the checkpoint-loading progress bar
        tuning["extra_engine_args"] = {"use_tqdm_on_load": False, **tuning["extra_engine_args"]}
    options = EngineOptions(
        model=model,
        served_model_name=served,
        max_model_len=settings.max_model_len,
        dtype=settings.dtype,
        tensor_parallel_size=settings.tensor_parallel_size,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        cpu_kvcache_space_gib=settings.cpu_kvcache_space_gib,
        enforce_eager=settings.enforce_eager,
        json_without_whitespace=json_without_whitespace,
        float32_without_cpu_bf16=settings.model is None,
        **tuning,
        engine_stats=True,
    )
    backend = VllmBackend(options, progress=_progress)
    url = f"http://{_display_host(settings.host)}:{settings.port}/v1"

    def on_ready() -> None:
        freeze_startup_heap()
        _progress(f"Ready. Point the OpenAI SDK at base_url={url} with model={served!r}")

    lifecycle = Lifecycle(grace_seconds=settings.drain_grace)
    app = create_app(
        settings.proxy_config(served),
        backend,
        on_ready=on_ready,
        lifecycle=lifecycle,
        exit_on_engine_failure=True,
        engine_stats=True,
    )
    _progress(f"Listening on {url} (engine loading in the background; GET /ready turns 200)")
    code = run_server(app, lifecycle, **_uvicorn_options(settings))
    _progress(f"Stopped (exit code {code})")
    return code


def serve_remote(settings: Settings, sockets: list[socket.socket] | None = None) -> int:
    """Serve through running vLLM replicas (`--backend-url`): no engine is loaded here.

    Drains on SIGTERM like the in-process server, but replicas that are all down do not end
    the process: they are health-checked and re-admitted when they come back.
    """
    from proxy.server.app import create_app
    from proxy.server.lifecycle import Lifecycle, freeze_startup_heap, run_server

    pool = build_pool(settings)
    url = f"http://{_display_host(settings.host)}:{settings.port}/v1"

    def on_ready() -> None:
        name = settings.served_model_name or pool.model_name
        freeze_startup_heap()
        _progress(f"Ready. Point the OpenAI SDK at base_url={url} with model={name!r}")

    lifecycle = Lifecycle(grace_seconds=settings.drain_grace)
    app = create_app(
        settings.proxy_config(settings.served_model_name),
        pool,
        on_ready=on_ready,
        lifecycle=lifecycle,
    )
    replicas = ", ".join(r.url for r in pool.replicas)
    _progress(f"Listening on {url} in front of {replicas} (GET /ready turns 200 with one up)")
    code = run_server(app, lifecycle, sockets, **_uvicorn_options(settings))
    _progress(f"Stopped (exit code {code})")
    return code


def _uvicorn_options(settings: Settings) -> dict[str, object]:
    """uvicorn's keyword arguments: past `limit_concurrency` open connections (or tasks)
    uvicorn answers every new request with a plain 503 before the app sees it, a bound on
    what a connection flood can make this process hold."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "limit_concurrency": settings.max_connections,
    }


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    check_key_file(settings)
    check_code_interpreter(settings, PROG)
    return serve(settings)


def check_key_file(settings: Settings) -> None:
    """A key file that does not load is a start-up error (exit 2, naming the file and line),
    not a server that fails every request or one that serves without keys."""
    if settings.api_key_file is None:
        return
    from proxy.server.keys import KeyFileError, key_set, read_key_file

    try:
        key_set(settings.api_key, read_key_file(settings.api_key_file))
    except KeyFileError as exc:
        print(f"{PROG} serve: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(main())
