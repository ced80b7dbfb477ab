"""Session fixtures that run the real uvicorn server (see tests/conftest.py).

Servers run as `uvicorn.Server(...).serve()` tasks on the session's `background_loop`, the loop
the real engine lives on, so one engine (loaded once) serves both the backend tests and the HTTP
tests. Each server listens on a free port on 127.0.0.1. Besides the real-engine server there is
one on a `ScriptedBackend` (replayed token sequences, fault injection), reprogrammed per test,
and `make_server` for tests that need their own configuration (auth, CORS, a loading engine).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from proxy.backends.base import EngineBackend
from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.app import create_app
from proxy.server.settings import ProxyConfig
from tests.support.loop import BackgroundLoop

# Pinned so rendered prompts (and therefore the engine's outputs) are reproducible.
TEST_DATE = "2026-01-15"


@dataclass
class RunningServer:
    """A live server: `base_url` is the OpenAI SDK's base_url (ends with /v1)."""

    app: FastAPI
    backend: EngineBackend
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def model(self) -> str:
        return self.app.state.service.model_names()[0]


async def _start(app: FastAPI, backend: EngineBackend) -> RunningServer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited during startup")
        await asyncio.sleep(0.01)
    return RunningServer(app, backend, f"http://127.0.0.1:{port}", server, task)


async def _stop(running: RunningServer) -> None:
    running.server.should_exit = True
    await asyncio.wait_for(running.task, timeout=15)


def start_server(
    loop: BackgroundLoop, config: ProxyConfig, backend: EngineBackend, **app_options: Any
) -> RunningServer:
    """Serve `backend` on `loop` (the backend is not shut down with the server)."""
    app = create_app(config, backend, owns_backend=False, **app_options)
    return loop.run(_start(app, backend), timeout=60)


def stop_server(loop: BackgroundLoop, running: RunningServer) -> None:
    loop.run(_stop(running), timeout=30)


def wait_ready(loop: BackgroundLoop, running: RunningServer, timeout: float = 600) -> None:
    """Block until the app reports the engine ready (startup runs in the background), as /ready
    does: after `--warm-tools` too."""

    async def _wait() -> None:
        startup = running.app.state.startup
        service = running.app.state.service
        while not (service.encoding_loaded and running.backend.ready and service.startup_done):
            if startup.error:
                raise RuntimeError(startup.error)
            await asyncio.sleep(0.05)

    loop.run(_wait(), timeout=timeout)


@pytest.fixture(scope="session")
def proxy_server(
    background_loop: BackgroundLoop, vllm_backend: EngineBackend
) -> Iterator[RunningServer]:
    """The real server in front of the real vLLM engine on the demo model."""
    config = ProxyConfig(served_model_names=(vllm_backend.model_name,), conversation_date=TEST_DATE)
    running = start_server(background_loop, config, vllm_backend)
    wait_ready(background_loop, running)
    yield running
    stop_server(background_loop, running)


@pytest.fixture(scope="session")
def _scripted_session(background_loop: BackgroundLoop) -> Iterator[RunningServer]:
    backend = ScriptedBackend()
    config = ProxyConfig(served_model_names=(backend.model_name,), conversation_date=TEST_DATE)
    running = start_server(background_loop, config, backend)
    wait_ready(background_loop, running)
    yield running
    stop_server(background_loop, running)


@pytest.fixture
def scripted_server(_scripted_session: RunningServer) -> RunningServer:
    """The server on a `ScriptedBackend`, with a fresh script and records for this test."""
    backend = _scripted_session.backend
    assert isinstance(backend, ScriptedBackend)
    backend.script = Script()
    backend.requests.clear()
    backend.aborted.clear()
    backend.finished.clear()
    return _scripted_session


@pytest.fixture
def make_server(
    background_loop: BackgroundLoop,
) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with their own config/backend; all stopped when the test ends."""
    started: list[RunningServer] = []

    def make(
        config: ProxyConfig | None = None,
        backend: EngineBackend | None = None,
        *,
        ready: bool = True,
        **app_options: Any,
    ) -> RunningServer:
        backend = backend or ScriptedBackend()
        config = config or ProxyConfig(
            served_model_names=(backend.model_name,), conversation_date=TEST_DATE
        )
        running = start_server(background_loop, config, backend, **app_options)
        started.append(running)
        if ready:
            wait_ready(background_loop, running)
        return running

    yield make
    for running in started:
        stop_server(background_loop, running)
