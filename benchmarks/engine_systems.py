"""The systems `bench_side_by_side.py` (and `bench_compat_suite.py`) measure on the demo engine:
`harmony-proxy serve`, `vllm serve` (with or without `--stream-interval`), the bare AsyncLLM
driver and the HTTP floor, each started as its own process group with the same engine settings,
and the `Run` a measurement of one of them gives."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENGINE_PROCESSES = ROOT / "benchmarks" / "engine_processes.py"

from benchmarks.engine_processes import DATE, MODEL, PROMPTS  # noqa: E402
from benchmarks.proc_cpu import cpu_seconds, process_tree, stop_process  # noqa: E402
from proxy.server.probe import ExitedWhileStarting, wait_until_ok  # noqa: E402
from tests.support.replicas import free_port  # noqa: E402


# -- results ----------------------------------------------------------------------------------
@dataclass
class Run:
    system: str
    clients: int
    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    serving_cpu: float = 0.0
    engine_cpu: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def ms_per_token(self) -> float:
        return 1000 * self.serving_cpu / max(1, self.tokens)

    @property
    def engine_ms_per_token(self) -> float:
        return 1000 * self.engine_cpu / max(1, self.tokens)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- systems ----------------------------------------------------------------------------------
class System:
    name = ""
    pid = 0

    def run(self, clients: int, prompts: int, max_tokens: int) -> Run:
        raise NotImplementedError


def _engine_flags(args: argparse.Namespace) -> list[str]:
    return [
        "--max-model-len",
        str(args.max_model_len),
        "--max-num-seqs",
        str(args.max_num_seqs),
        "--enable-prefix-caching",
        "--dtype",
        args.dtype,
    ]


def _wait_http(url: str, path: str, process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_until_ok(url + path, timeout=900, process=process, interval=1)
    except (ExitedWhileStarting, TimeoutError) as exc:
        raise RuntimeError(f"{process.args[:4]}: {exc}; see {log}") from None


def _popen(
    args: list[str], log: Path, root: Path = ROOT, **kwargs: object
) -> subprocess.Popen[bytes]:
    """A system's process, in a process group of its own (see `stop_process`), run from `root`."""
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    if root != ROOT:  # (`python -m proxy` imports the package from the working directory)
        env["PYTHONPATH"] = str(root)
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            start_new_session=True,
            **kwargs,
        )


class HttpSystem(System):
    """A streaming chat server; clients are httpx streams parsed like an SDK would."""

    def __init__(self, name: str, url: str, pid: int) -> None:
        self.name, self.url, self.pid = name, url, pid

    def run(self, clients: int, prompts: int, max_tokens: int) -> Run:
        return asyncio.run(self._run(clients, prompts, max_tokens))

    async def _run(self, clients: int, prompts: int, max_tokens: int) -> Run:
        run = Run(self.name, clients)
        counter = iter(range(prompts))
        limits = httpx.Limits(max_connections=clients + 2)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:

            async def one(i: int) -> None:
                body = {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "max_tokens": max_tokens,
                    "seed": i,
                }
                started = time.perf_counter()
                last: float | None = None
                async with client.stream(
                    "POST", f"{self.url}/v1/chat/completions", json=body
                ) as response:
                    response.raise_for_status()
                    async for line in response.aiter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        payload = json.loads(line[6:])
                        if payload.get("usage") and not payload.get("choices"):
                            run.tokens += payload["usage"]["completion_tokens"]
                        if not any(_visible(c.get("delta") or {}) for c in payload["choices"]):
                            continue
                        now = time.perf_counter()
                        if last is None:
                            run.ttft.append(now - started)
                        else:
                            run.itl.append(now - last)
                        last = now

            async def worker() -> None:
                for i in counter:
                    await one(i)

            cpu0, engine0 = cpu_seconds([self.pid]), _engine_cpu(self.pid)
            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            run.seconds = time.perf_counter() - began
            run.serving_cpu = cpu_seconds([self.pid]) - cpu0
            run.engine_cpu = _engine_cpu(self.pid) - engine0
        return run


def _visible(delta: dict) -> bool:
    return bool(
        delta.get("content")
        or delta.get("reasoning")
        or delta.get("reasoning_content")
        or delta.get("tool_calls")
    )


def _engine_cpu(pid: int) -> float:
    """The engine core and its workers: every descendant of the serving process."""
    return cpu_seconds(process_tree(pid)[1:])


class DriverSystem(System):
    """The bare AsyncLLM driver as a child process, driven over its stdin/stdout."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], results: BinaryIO) -> None:
        self.name, self.process, self.pid = name, process, process.pid
        self.results = results

    def run(self, clients: int, prompts: int, max_tokens: int) -> Run:
        assert self.process.stdin is not None
        cpu0, engine0 = cpu_seconds([self.pid]), _engine_cpu(self.pid)
        self.process.stdin.write(f"{clients} {prompts} {max_tokens}\n".encode())
        self.process.stdin.flush()
        line = self.results.readline()
        if not line:
            raise RuntimeError("the driver exited")
        out = json.loads(line)
        run = Run(self.name, clients, out["tokens"], out["seconds"], out["ttft"], out["itl"])
        run.serving_cpu = cpu_seconds([self.pid]) - cpu0
        run.engine_cpu = _engine_cpu(self.pid) - engine0
        return run


@contextmanager
def proxy_system(
    args: argparse.Namespace, logs: Path, root: Path = ROOT, name: str = "harmony-proxy"
) -> Iterator[System]:
    """`harmony-proxy serve` from the checkout at `root` (`--compare-root`: an older commit,
    A/B on the same engine settings in the same run)."""
    port = free_port()
    log = logs / ("proxy.log" if root == ROOT else "proxy-base.log")
    command = [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--date", DATE]
    process = _popen([*command, *_engine_flags(args), "--log-level", "warning"], log, root=root)
    try:
        _wait_http(f"http://127.0.0.1:{port}", "/ready", process, log)
        yield HttpSystem(name, f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop_process(process)


@contextmanager
def vllm_system(
    args: argparse.Namespace, logs: Path, stream_interval: int = 1, extra_args: Sequence[str] = ()
) -> Iterator[System]:
    """`stream_interval`: vLLM's `--stream-interval N` (one write per N tokens per stream);
    `extra_args`: more `vllm serve` flags (benchmarks/bench_compat_suite.py's completion budget)."""
    from proxy.demo_model import ensure_demo_model
    from proxy.vllm_serve import replica_args

    port = free_port()
    log = logs / f"vllm-si{stream_interval}.log"
    extra = ["--reasoning-parser", "openai_gptoss", "--tool-call-parser", "openai"]
    extra += ["--stream-interval", str(stream_interval)]
    extra += ["--enable-auto-tool-choice", "--max-num-seqs", str(args.max_num_seqs)]
    extra += ["--enable-prefix-caching", "--dtype", args.dtype]
    extra += list(extra_args)
    vllm_args = replica_args(
        str(ensure_demo_model(progress=lambda _: None)),
        port=port,
        served_model_name=MODEL,
        max_model_len=args.max_model_len,
        demo=True,
        extra=extra,
    )
    # vLLM's gpt-oss path loads the vocabulary through openai_harmony, which reads it offline
    # only from TIKTOKEN_ENCODINGS_BASE (as tests/conftest.py sets up): no download here.
    if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
        from harmony._vocab import write_verified_vocab

        vocab = Path(tempfile.gettempdir()) / "harmony-proxy-tests-vocab"
        write_verified_vocab(vocab)
        os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(vocab)
    process = _popen([sys.executable, "-m", "proxy.vllm_serve", *vllm_args], log)
    try:
        _wait_http(f"http://127.0.0.1:{port}", "/v1/models", process, log)
        name = "vllm serve" + (
            f" --stream-interval {stream_interval}" if stream_interval > 1 else ""
        )
        yield HttpSystem(name, f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop_process(process)


@contextmanager
def driver_system(args: argparse.Namespace, logs: Path, dtype: str) -> Iterator[System]:
    log = logs / f"driver-{dtype}.log"
    command = [sys.executable, str(ENGINE_PROCESSES), "driver", "--dtype", dtype]
    command += ["--max-model-len", str(args.max_model_len)]
    command += ["--max-num-seqs", str(args.max_num_seqs)]
    read_fd, write_fd = os.pipe()  # results come back on their own pipe: vLLM prints freely
    command += ["--result-fd", str(write_fd)]
    with open(log, "ab") as err:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=err,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    os.close(write_fd)
    results = os.fdopen(read_fd, "rb")
    try:
        ready = results.readline()
        if not ready.startswith(b"READY"):
            raise RuntimeError(f"the driver did not start; see {log}")
        name = "bare AsyncLLM" if dtype == args.dtype else f"driver {dtype}"
        yield DriverSystem(name, process, results)
    finally:
        results.close()
        if process.stdin is not None:
            process.stdin.close()
        stop_process(process)


@contextmanager
def http_floor_system(args: argparse.Namespace, logs: Path) -> Iterator[System]:
    port = free_port()
    log = logs / "http-floor.log"
    command = [sys.executable, str(ENGINE_PROCESSES), "http-floor", "--port", str(port)]
    command += ["--dtype", args.dtype, "--max-model-len", str(args.max_model_len)]
    command += ["--max-num-seqs", str(args.max_num_seqs)]
    process = _popen(command, log)
    try:
        _wait_http(f"http://127.0.0.1:{port}", "/ready", process, log)
        yield HttpSystem("HTTP floor", f"http://127.0.0.1:{port}", process.pid)
    finally:
        stop_process(process)


def default_dtype() -> str:
    from proxy.backends.vllm_options import cpu_has_bf16

    gpu = shutil.which("nvidia-smi") is not None
    return "bfloat16" if gpu or cpu_has_bf16() else "float32"
