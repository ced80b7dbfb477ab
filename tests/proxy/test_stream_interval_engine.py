"""Stream intervals on the real engine: the demo model behind the real server, raw HTTP.

The in-process vLLM engine merges outputs itself when the server is behind (its per-request
output collector), so what the proxy adds here is the floor: a request asking for a coarser
stream (`stream_options.stream_interval_ms`) gets the same greedy answer in fewer chunks, with
its finish and usage chunks, and the time floor writes held text when the engine is slow.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.proxy.helpers import WEATHER_TOOL, joined_stream, stream_chunks

pytestmark = pytest.mark.engine


def _stream(server, **fields: Any) -> list[dict[str, Any]]:
    payload = {
        "model": server.model,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "temperature": 0,
        "seed": 7,
        "max_completion_tokens": 120,
        **fields,
    }
    with httpx.Client(timeout=300) as client:
        return stream_chunks(client, f"{server.base_url}/chat/completions", payload)


def _joined(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The joined stream, its usage reduced to the completion's length (the second request may
    hit the prefix cache, which only the prompt's figures show)."""
    joined = joined_stream(chunks)
    joined["usage"] = [usage["completion_tokens"] for usage in joined["usage"]]
    return joined


def test_a_coarser_stream_on_the_engine_carries_the_same_answer(proxy_server) -> None:
    options = {"include_usage": True}
    extra = {"tools": [WEATHER_TOOL], "tool_choice": "required"}
    plain = _stream(proxy_server, stream_options=options, **extra)
    coarse = _stream(proxy_server, stream_options={**options, "stream_interval_ms": 150}, **extra)
    assert _joined(coarse) == _joined(plain)
    calls = _joined(coarse)["choices"][0]["calls"]
    assert calls and calls[0]["name"] == "get_weather"
    assert len(_joined(coarse)["choices"][0]["finish"]) == 1 and len(_joined(coarse)["usage"]) == 1
    text_chunks = [c for c in coarse if c["choices"] and c["choices"][0]["delta"]]
    plain_chunks = [c for c in plain if c["choices"] and c["choices"][0]["delta"]]
    assert len(text_chunks) < len(plain_chunks)
