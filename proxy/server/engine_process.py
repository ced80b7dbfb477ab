"""`harmony-proxy serve --workers N` without `--backend-url`: one engine, N proxy processes.

The in-process engine ties rendering, parsing and HTTP to the engine's process, so one event
loop caps the whole server (issue 11). With several workers the engine moves into its own
process instead: vLLM's own server with the token-in/token-out endpoint
(`python -m proxy.vllm_serve serve MODEL --enable-scale-out`, bound to 127.0.0.1 on a free
port), and the N workers of proxy/server/workers.py serve the API in front of it through the remote
backend, exactly as in front of remote replicas. vLLM already runs its engine core in a process
of its own, so the engine side is unchanged; what scales is the per-token work of the frontend.

The engine process is started first and must report healthy before the workers start; it is
stopped (SIGTERM, then SIGKILL) when the workers have drained and exited.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from proxy.server.probe import ExitedWhileStarting, wait_until_ok
from proxy.vllm_serve import replica_args

START_TIMEOUT_SECONDS = 900.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_command(args: argparse.Namespace, model: str, served: str, port: int) -> list[str]:
    """`python -m proxy.vllm_serve serve ...` with the engine flags this CLI was given."""
    extra: list[str] = []
    if args.dtype != "auto":
        extra += ["--dtype", args.dtype]
    elif args.model is None:
        from proxy.backends.vllm_engine import cpu_has_bf16

        if not cpu_has_bf16():  # as the in-process demo engine does (EngineOptions)
            extra += ["--dtype", "float32"]
    if args.tensor_parallel_size and args.tensor_parallel_size > 1:
        extra += ["--tensor-parallel-size", str(args.tensor_parallel_size)]
    if args.gpu_memory_utilization:
        extra += ["--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    for flag in ("max_num_seqs", "max_num_batched_tokens"):
        value = getattr(args, flag, None)
        if value:
            extra += [f"--{flag.replace('_', '-')}", str(value)]
    if args.log_level.lower() != "debug":
        extra += ["--disable-uvicorn-access-log"]
    return [
        sys.executable,
        "-m",
        "proxy.vllm_serve",
        *replica_args(
            model,
            port=port,
            served_model_name=served,
            max_model_len=args.max_model_len,
            demo=args.model is None,
            extra=extra,
        ),
    ]


def serve_with_engine_process(args: argparse.Namespace, progress: Callable[[str], None]) -> int:
    """Start the engine process, then `args.workers` proxy workers in front of it."""
    from proxy.server.workers import serve_workers

    model, served = args.model, args.served_model_name
    if model is None:
        from proxy.demo_model import DEMO_MODEL_NAME, ensure_demo_model

        model = str(ensure_demo_model(progress=progress))
        served = served or DEMO_MODEL_NAME
    served = served or model
    port = _free_port()
    env = dict(os.environ)
    if args.log_level.lower() != "debug":
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if args.cpu_kvcache_space_gib:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(args.cpu_kvcache_space_gib)
    command = engine_command(args, model, served, port)
    progress(f"Starting the engine process (vllm serve on 127.0.0.1:{port})...")
    engine = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(engine, url)
        progress(f"Engine ready; starting {args.workers} proxy workers in front of it")
        args.backend_url = [url]
        args.served_model_name = served
        return serve_workers(args)
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
        engine.wait(timeout=30)
    except subprocess.TimeoutExpired:
        engine.kill()
        engine.wait()
