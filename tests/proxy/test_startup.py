"""`harmony-proxy serve` as a real process: start-up refusals, the connection and body limits,
and a quiet stop.

The server runs in front of a fake replica (a real HTTP server, tests/remote/fake_replica.py),
so no engine is loaded; what is checked is the process: its exit code, what uvicorn does with
the flags, and what it prints when it stops.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.server.probe import wait_until_ok
from tests.remote.fake_replica import FakeBehaviour, start_fake, stop_fake
from tests.support.loop import BackgroundLoop
from tests.support.replicas import free_port

# The lines nanobind prints at interpreter exit for objects still alive then.
LEAK_MARKERS = ("nanobind: leaked", "leaked instance", "leaked type", "leaked function")


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--api-key", ""], {}, "--api-key"),
        (["--api-key", "   "], {}, "--api-key"),
        ([], {"HARMONY_PROXY_API_KEY": ""}, "HARMONY_PROXY_API_KEY"),
        ([], {"HARMONY_PROXY_API_KEY": "k1,,k2"}, "HARMONY_PROXY_API_KEY"),
    ],
)
def test_an_empty_api_key_stops_the_server_before_it_listens(argv, environ, named):
    """Exit code 2 and the reason, never a server without authentication."""
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **environ},
    )
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "empty" in result.stderr
    assert "Listening" not in result.stdout


class Server:
    """`python -m proxy serve --backend-url <fake>` in a process of its own, logs in files."""

    def __init__(self, argv: list[str], logs: Path, preamble: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout = (logs / "stdout.log").open("a+")
        self.stderr = (logs / "stderr.log").open("a+")
        # The real command's entry point, after `preamble` (e.g. an import the engine would do).
        code = f"{preamble}\nfrom proxy.server.cli import main\nraise SystemExit(main())"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--port", str(self.port), *argv],
            stdout=self.stdout,
            stderr=self.stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_until_ok(f"{self.url}/ready", timeout=120, process=self.process, interval=0.2)
        except Exception:
            self.stop()
            raise AssertionError(self.output()) from None

    def stop(self) -> int:
        """SIGTERM (one drain) and the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def output(self) -> str:
        return f"--- stdout\n{_read(self.stdout)}\n--- stderr\n{_read(self.stderr)}"


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


@pytest.fixture
def fake_url(background_loop: BackgroundLoop) -> Iterator[str]:
    fake = background_loop.run(start_fake(FakeBehaviour()))
    yield fake.url
    background_loop.run(stop_fake(fake))


@pytest.fixture
def limited(fake_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(
        ["--backend-url", fake_url, "--max-connections", "3", "--body-deadline", "1"], tmp_path
    )
    yield server
    server.stop()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    time.sleep(0.1)  # accepted by the server's loop
    return sock


def _status(sock: socket.socket, request: bytes) -> int:
    sock.sendall(request)
    head = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(head.split()[1])


GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def test_past_max_connections_uvicorn_answers_503(limited: Server):
    """uvicorn counts open connections, idle ones included; at the limit (the requesting
    connection itself counted) it answers 503 before the app sees the request."""
    idle = [_connect(limited.port) for _ in range(2)]
    try:
        with _connect(limited.port) as third:
            assert _status(third, GET_HEALTH) == 503
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the closed connections leave the server's set shortly
        if httpx.get(f"{limited.url}/health", timeout=5).status_code == 200:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_body_that_does_not_arrive_in_time_gets_408(limited: Server):
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    with _connect(limited.port) as sock:
        started = time.monotonic()
        assert _status(sock, head + b'{"model": "gpt-oss-demo", ') == 408
        assert 0.8 < time.monotonic() - started < 10


def test_the_server_stops_without_leak_reports(fake_url: str, tmp_path: Path):
    """The engine's libraries are imported (Triton, a nanobind extension, as vLLM imports
    it) and the start-up heap is frozen on ready, as with the engine: the stop prints no
    "nanobind: leaked ..." lines and the process exits 0."""
    preamble = "import triton.language" if importlib.util.find_spec("triton") else ""
    server = Server(["--backend-url", fake_url], tmp_path, preamble=preamble)
    assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 200
    assert server.stop() == 0, server.output()
    output = server.output()
    assert not [line for line in output.splitlines() if any(m in line for m in LEAK_MARKERS)], (
        output
    )
    assert "Traceback" not in output, output
