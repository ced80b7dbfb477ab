"""Fixtures of the hosted-tool tests: the test MCP server (tests/support/mcp_server.py) and a
proxy on the scripted backend allowed to reach it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from proxy.backends.scripted import ScriptedBackend
from proxy.server.settings import ProxyConfig
from tests.support.mcp_fixtures import McpServer, mcp_server  # noqa: F401 - a fixture
from tests.support.server_fixtures import TEST_DATE, RunningServer


@pytest.fixture
def hosted_server(
    make_server: Callable[..., RunningServer],
    mcp_server: McpServer,  # noqa: F811
) -> Callable[..., RunningServer]:
    """`hosted_server(**config)`: a scripted-backend proxy whose `--mcp-allow` is the test
    MCP server's origin (overridable), with a 3-second MCP timeout; `max_model_len` is the
    scripted engine's context."""

    def make(max_model_len: int = 8192, **options: object) -> RunningServer:
        backend = ScriptedBackend(max_model_len=max_model_len)
        settings: dict[str, object] = {
            "served_model_names": (backend.model_name,),
            "conversation_date": TEST_DATE,
            "mcp_allow": (mcp_server.origin, f"http://127.0.0.1:{mcp_server.sse_port}"),
            "mcp_timeout_seconds": 3.0,
        }
        settings.update(options)
        return make_server(ProxyConfig(**settings), backend)  # type: ignore[arg-type]

    return make
