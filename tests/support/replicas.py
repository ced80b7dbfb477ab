"""Real `vllm serve` replicas of the demo model as subprocesses on 127.0.0.1.

Each replica runs `python -m proxy.vllm_serve serve ...` (vLLM's own CLI; see that module) in
its own process group, so a test can kill it outright (API server and engine core together,
as a crashed node would vanish) and start it again on the same port. On CPU hosts each replica's
OpenMP threads are bound to their own core, so two replicas do not fight over one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from proxy.server.probe import ExitedWhileStarting, wait_until_ok
from proxy.vllm_serve import replica_args

REPLICA_MAX_MODEL_LEN = 2048
START_TIMEOUT = 900.0
# The key the session's replicas require (a test value: they listen on 127.0.0.1 only).
REPLICA_KEY = "test-replica-key-6f1d"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class VllmReplica:
    """One `vllm serve` process (group) serving the demo model."""

    model_dir: Path
    served_model_name: str
    log_path: Path
    port: int = field(default_factory=free_port)
    cpu: int | None = None
    # Started with this key (VLLM_API_KEY: `vllm serve --api-key` read from the environment, as
    # deploy/ gives it): /v1 and /inference then answer 401 without it.
    api_key: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def attach(cls, url: str, log_path: Path) -> VllmReplica:
        """A replica someone else started (no process to kill or restart)."""
        return cls(Path("."), "", log_path, port=int(url.rsplit(":", 1)[1]))

    @property
    def owned(self) -> bool:
        return self.process is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        env.pop("VLLM_API_KEY", None)
        if self.api_key:
            env["VLLM_API_KEY"] = self.api_key
        if self.cpu is not None and (os.cpu_count() or 1) > self.cpu:
            env["VLLM_CPU_OMP_THREADS_BIND"] = str(self.cpu)
        args = replica_args(
            str(self.model_dir),
            port=self.port,
            served_model_name=self.served_model_name,
            max_model_len=REPLICA_MAX_MODEL_LEN,
            demo=True,
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy.vllm_serve", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        try:
            # /health: open with or without an API key (vLLM guards /v1 and /inference only).
            wait_until_ok(f"{self.url}/health", timeout=timeout, process=self.process)
        except ExitedWhileStarting as exc:
            raise RuntimeError(f"vllm serve exited ({exc.returncode}):\n{self.tail()}") from None
        except TimeoutError:
            raise TimeoutError(f"vllm serve not ready after {timeout} s:\n{self.tail()}") from None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """Vanish at once, engine included (SIGKILL to the whole process group)."""
        if self.process is None:
            return
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()

    def metrics(self) -> dict[str, float]:
        """The replica's own Prometheus samples, `name{labels}` with labels dropped, summed."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
            if match:
                labels = match.group(2) or ""
                name = match.group(1)
                reason = re.search(r'finished_reason="(\w+)"', labels)
                if reason:
                    name = f"{name}:{reason.group(1)}"
                out[name] = out.get(name, 0.0) + float(match.group(3))
        return out


def start_replicas(
    model_dir: Path,
    served_model_name: str,
    log_dir: Path,
    count: int = 2,
    api_key: str | None = None,
) -> list[VllmReplica]:
    """Start `count` replicas in parallel (each requiring `api_key` if given); wait for all."""
    replicas = [
        VllmReplica(
            model_dir, served_model_name, log_dir / f"replica-{i}.log", cpu=i, api_key=api_key
        )
        for i in range(count)
    ]
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
    except BaseException:
        for replica in replicas:
            replica.kill()
        raise
    return replicas
