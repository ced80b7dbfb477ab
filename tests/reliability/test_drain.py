"""Graceful drain on a real SIGTERM, and exit codes, on a real server process.

The process is `tests/support/scripted_serve.py`: the CLI's own serving path (lifecycle,
uvicorn, watchdog) over a scripted engine, so these tests need no model and take seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from proxy.backends.scripted import ScriptedBackend
from tests.proxy.helpers import body, sse_events

URL = "/v1/chat/completions"
MODEL = "scripted-gpt-oss"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def serve_process():
    started: list[subprocess.Popen] = []

    def start(*extra: str, wait_ready: bool = True) -> tuple[subprocess.Popen, str]:
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.scripted_serve", "--port", str(port), *extra],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                return httpx.get(f"{url}/ready").status_code == 200
            except httpx.TransportError:
                return False

        if wait_ready:
            _wait_for(ready)
        return proc, url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class StreamResult:
    first_event: threading.Event = field(default_factory=threading.Event)
    text: str = ""
    error: BaseException | None = None

    @property
    def events(self) -> list[str]:
        return sse_events(self.text)


def _stream(url: str, max_tokens: int) -> tuple[threading.Thread, StreamResult]:
    result = StreamResult()

    def run() -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                payload = body(MODEL, stream=True, max_tokens=max_tokens)
                with client.stream("POST", URL, json=payload) as response:
                    for line in response.iter_lines():
                        result.text += line + "\n"
                        if line.startswith("data:"):
                            result.first_event.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result.error = exc
            result.first_event.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_sigterm_drains_live_streams_then_exits_0(serve_process):
    proc, url = serve_process("--grace", "1.5", "--delay", "0.02")
    # Four streams that outlive the grace period (~5000 tokens at 50/s), two that end inside it.
    long = [_stream(url, 4000) for _ in range(4)]
    short = [_stream(url, 20) for _ in range(2)]
    for _, result in long + short:
        assert result.first_event.wait(30)
    proc.send_signal(signal.SIGTERM)
    with httpx.Client(base_url=url) as client:
        _wait_for(lambda: client.get("/ready").status_code == 503)
        assert client.get("/ready").json()["status"] == "draining"
        assert client.get("/health").status_code == 200
        refused = client.post(URL, json=body(MODEL))
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "server_shutting_down"
    for thread, _ in long + short:
        thread.join(30)
    for _, result in long + short:
        assert result.error is None
        assert result.events[-1] == "[DONE]"
    for _, result in long:
        payloads = [json.loads(e) for e in result.events[:-1]]
        errors = [p for p in payloads if "error" in p]
        assert [e["error"]["code"] for e in errors] == ["server_shutting_down"]
        finish = [c["choices"][0]["finish_reason"] for c in payloads if c.get("choices")]
        assert finish[-1] == "stop"
    for _, result in short:
        payloads = [json.loads(e) for e in result.events[:-1]]
        assert not any("error" in p for p in payloads)
        assert payloads[-1]["choices"][0]["finish_reason"] == "length"
    assert proc.wait(30) == 0


def test_an_idle_server_exits_0_on_sigterm_at_once(serve_process):
    proc, _ = serve_process("--grace", "30")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0  # no open request: no grace period to sit out


def test_engine_death_mid_stream_ends_streams_with_an_error_and_exits_1(serve_process):
    proc, url = serve_process("--delay", "0.02")
    streams = [_stream(url, 4000) for _ in range(2)]
    for _, result in streams:
        assert result.first_event.wait(30)
    proc.send_signal(signal.SIGUSR1)  # the scripted engine dies
    for thread, result in streams:
        thread.join(30)
        assert result.error is None
        assert result.events[-1] == "[DONE]"
        assert any("error" in json.loads(e) for e in result.events[:-1])
    assert proc.wait(30) == 1


def test_an_engine_that_fails_to_start_makes_the_process_exit_1(serve_process):
    proc, _ = serve_process("--fail-start", wait_ready=False)
    assert proc.wait(60) == 1


def test_health_turns_503_when_the_engine_dies(make_server):
    backend = ScriptedBackend()
    server = make_server(backend=backend)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health").json() == {
            "status": "ok",
            "engine": "ready",
            "draining": False,
        }
        backend.kill()
        health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["engine"] == "dead"
