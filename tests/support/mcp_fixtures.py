"""The `mcp_server` session fixture: tests/support/mcp_server.py running in its own process.

Import it into a test package's conftest (`from tests.support.mcp_fixtures import mcp_server`).
It waits until both transports answer, and stops the process at the end of the session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class McpServer:
    """Where the test MCP server listens."""

    port: int
    sse_port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Its streamable HTTP endpoint."""
        return f"{self.origin}/mcp"

    @property
    def sse_url(self) -> str:
        return f"http://127.0.0.1:{self.sse_port}/sse"

    def seen_headers(self) -> dict[str, str | None]:
        """The headers of the last MCP request it received."""
        return httpx.get(f"{self.origin}/seen", timeout=5).json()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mcp_server() -> Iterator[McpServer]:
    server = McpServer(free_port(), free_port())
    env = dict(os.environ, PYTHONPATH=str(_ROOT))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.mcp_server",
            "--port",
            str(server.port),
            "--sse-port",
            str(server.sse_port),
        ],
        cwd=_ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the test MCP server exited with {process.returncode}")
            try:
                httpx.get(f"{server.origin}/seen", timeout=1).raise_for_status()
                with socket.create_connection(("127.0.0.1", server.sse_port), timeout=1):
                    break
            except (httpx.HTTPError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
