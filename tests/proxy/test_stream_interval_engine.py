"""Stream intervals on the real engine: the demo model behind the real server, raw HTTP.

The in-process vLLM engine merges outputs itself when the server is behind (its per-request
output collector), so what the proxy adds here is the floor: a request asking for a coarser
stream (`stream_options.stream_interval_ms`) gets the same greedy answer in fewer chunks, with
its finish and usage chunks, and the time floor writes held text when the engine is slow.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.proxy.helpers import WEATHER_TOOL, sse_events

pytestmark = pytest.mark.engine


def _stream(server, **fields: Any) -> list[dict[str, Any]]:
    payload = {
        "model": server.model,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "temperature": 0,
        "seed": 7,
        "max_completion_tokens": 120,
        "stream": True,
        **fields,
    }
    response = httpx.post(f"{server.base_url}/chat/completions", json=payload, timeout=300)
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def _joined(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": "", "calls": [], "finish": [], "usage": []}
    for chunk in chunks:
        if chunk.get("usage"):  # (the second request may hit the prefix cache: not compared)
            out["usage"].append(chunk["usage"]["completion_tokens"])
        for choice in chunk["choices"]:
            delta = choice["delta"]
            out["text"] += (delta.get("reasoning") or "") + (delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                if "id" in call:
                    out["calls"].append([call["function"]["name"], ""])
                out["calls"][call["index"]][1] += call["function"]["arguments"]
            if choice["finish_reason"]:
                out["finish"].append(choice["finish_reason"])
    return out


def test_a_coarser_stream_on_the_engine_carries_the_same_answer(proxy_server) -> None:
    options = {"include_usage": True}
    extra = {"tools": [WEATHER_TOOL], "tool_choice": "required"}
    plain = _stream(proxy_server, stream_options=options, **extra)
    coarse = _stream(proxy_server, stream_options={**options, "stream_interval_ms": 150}, **extra)
    assert _joined(coarse) == _joined(plain)
    assert _joined(coarse)["calls"] and _joined(coarse)["calls"][0][0] == "get_weather"
    assert len(_joined(coarse)["finish"]) == 1 and len(_joined(coarse)["usage"]) == 1
    text_chunks = [c for c in coarse if c["choices"] and c["choices"][0]["delta"]]
    plain_chunks = [c for c in plain if c["choices"] and c["choices"][0]["delta"]]
    assert len(text_chunks) < len(plain_chunks)
