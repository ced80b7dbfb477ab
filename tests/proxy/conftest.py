"""Fixtures of the proxy tests that more than one file uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from tests.support.replay import completion_for
from tests.support.server_fixtures import RunningServer


@pytest.fixture
def replaying(scripted_server: RunningServer) -> Iterator[RunningServer]:
    """The scripted server replaying bench_ceiling's completions (64 tokens each: reasoning,
    then an answer, or a tool call when the request declares the weather tool)."""
    backend = scripted_server.backend
    assert isinstance(backend, ScriptedBackend)
    backend.script_for = lambda prompt: Script([list(completion_for(prompt, 64))])
    try:
        yield scripted_server
    finally:
        backend.script_for = None
