"""`harmony-proxy serve --workers N --backend-url ...`: N proxy processes on one port.

One Python process has one event loop, and rendering, parsing and SSE framing cost CPU per
token: in front of remote replicas nothing ties the proxy to one process, so the supervisor
binds the port once and starts N workers (spawned, each a full `serve --backend-url` with its
own replica pool) that accept from the shared socket; the kernel spreads connections over them.

- Drain: SIGTERM/SIGINT to the supervisor is forwarded once to every worker, which drains as a
  single server does (README: Operating it); a second signal is forwarded again (exit at once).
  Workers run in their own process group, so a terminal's Ctrl-C reaches the supervisor only
  (else each worker would see it twice), and die with it (Linux: PR_SET_PDEATHSIG).
- SIGHUP to the supervisor is forwarded to every worker (each re-reads the API key file).
- A worker that exits while the server is not stopping is restarted (at most once a second).
- Exit code: the highest of the workers' codes.
- Metrics: `PROMETHEUS_MULTIPROC_DIR` is set to a fresh directory for the workers, so every
  worker's /metrics shows the totals over all of them (proxy/server/metrics.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from proxy.server.metrics import MULTIPROC_ENV
from proxy.server.settings import Settings

logger = logging.getLogger("proxy")

# Sockets travel to spawned children (as uvicorn's own supervisor sends them).
multiprocessing.allow_connection_pickling()
_spawn = multiprocessing.get_context("spawn")


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent (the supervisor) dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _worker_main(settings: Settings, sock: socket.socket) -> None:
    """A worker: one `serve` on the supervisor's socket, with the supervisor's settings."""
    os.setpgrp()
    _die_with_parent()
    from proxy.server.cli import serve

    sys.exit(serve(settings.replace(workers=1), sockets=[sock]))


class Supervisor:
    """Starts, watches, signals and reaps the workers (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.workers
        self.metrics_dir: str | None = None
        self.processes: list[BaseProcess] = []
        self.stopping = False
        self.signals = 0
        self.codes: list[int] = []

    def _start(self, sock: socket.socket) -> BaseProcess:
        process = _spawn.Process(target=_worker_main, args=(self.settings, sock), daemon=False)
        process.start()
        logger.info("worker %s started", process.pid)
        return process

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.signals += 1
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def _on_reload(self, sig: int, frame: FrameType | None) -> None:
        """SIGHUP: each worker re-reads what it can (the API key file)."""
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    def run(self) -> int:
        sock = bind_socket(self.settings.host, self.settings.port)
        self.metrics_dir = metrics_dir = tempfile.mkdtemp(prefix="harmony-proxy-metrics-")
        # prometheus-client reads its directory from the environment when it is imported, so
        # the workers inherit it (spawned: they import it afresh).
        os.environ[MULTIPROC_ENV] = metrics_dir
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_reload)
        try:
            self.processes = [self._start(sock) for _ in range(self.count)]
            last_restart = 0.0
            while True:
                alive = [p for p in self.processes if p.exitcode is None]
                if not alive:
                    break
                for i, process in enumerate(self.processes):
                    if process.exitcode is None:
                        continue
                    self._reap(process, count=self.stopping)
                    if not self.stopping and time.monotonic() - last_restart >= 1.0:
                        logger.warning(
                            "worker %s exited (%s); restarting it", process.pid, process.exitcode
                        )
                        last_restart = time.monotonic()
                        self.processes[i] = self._start(sock)
                time.sleep(0.2)
            for process in self.processes:
                self._reap(process)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return max(self.codes, default=0)

    def _reap(self, process: BaseProcess, count: bool = True) -> None:
        if getattr(process, "_reaped", False):
            return
        process.join(timeout=0)
        process._reaped = True  # type: ignore[attr-defined]
        if count:  # a worker that died and was replaced does not decide the exit code
            self.codes.append(max(0, process.exitcode or 0))
        from prometheus_client import multiprocess

        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid, self.metrics_dir)


def serve_workers(settings: Settings) -> int:
    """Run `settings.workers` proxy processes on `settings.host:settings.port` until drained."""
    return Supervisor(settings).run()
