"""Shared helpers for the proxy tests: Harmony token scripts, SSE parsing, request bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx

from proxy.core.conversation import load_encoding

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def toks(text: str) -> list[int]:
    """Token ids of `text`, Harmony special tokens included (a scripted model output)."""
    return load_encoding().encode(text, allowed_special="all")


def body(model: str, content: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order (comments such as pings skipped)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [
            line[len("data:") :].lstrip() for line in block.split("\n") if line.startswith("data:")
        ]
        if data:
            events.append("\n".join(data))
    return events


def stream_chunks(client: httpx.Client, url: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streaming request; return the JSON events (asserting the stream ends in [DONE])."""
    response = client.post(url, json={**payload, "stream": True})
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def fold_content(chunks: list[dict[str, Any]], index: int = 0) -> dict[str, Any]:
    """Concatenate a stream's deltas for one choice (what a client would assemble)."""
    out: dict[str, Any] = {"content": "", "reasoning": "", "tool_calls": {}, "finish_reason": None}
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if choice["index"] != index:
                continue
            delta = choice["delta"]
            out["content"] += delta.get("content") or ""
            out["reasoning"] += delta.get("reasoning") or ""
            for call in delta.get("tool_calls") or []:
                entry = out["tool_calls"].setdefault(
                    call["index"], {"id": None, "name": None, "arguments": ""}
                )
                if call.get("id"):
                    entry["id"] = call["id"]
                    entry["name"] = call["function"]["name"]
                entry["arguments"] += call["function"].get("arguments") or ""
            if choice.get("finish_reason"):
                out["finish_reason"] = choice["finish_reason"]
    return out


def neutral(request: Any, *, validated: bool = False) -> Any:
    """A chat request (a ChatCompletionRequest or its dict) as the core's GenerationRequest;
    `validated`: with the tool schemas checked, as the service's plan does."""
    import dataclasses

    from proxy.api.chat_request import generation_request
    from proxy.api.chat_schema import ChatCompletionRequest
    from proxy.core.tools import validate_schemas

    if isinstance(request, dict):
        request = ChatCompletionRequest.model_validate(request)
    wanted = generation_request(request, "chatcmpl-test")
    if validated:
        wanted = dataclasses.replace(wanted, tools=validate_schemas(wanted.tools))
    return wanted


def prompt_for(request: Any, config: Any = None) -> list[int]:
    """The prompt tokens the service renders for a chat request."""
    from proxy.api.chat_request import chat_prompt
    from proxy.api.chat_schema import ChatCompletionRequest
    from proxy.server.settings import ProxyConfig

    if isinstance(request, dict):
        request = ChatCompletionRequest.model_validate(request)
    return chat_prompt(request, (config or ProxyConfig()).service_settings().system)[0]


def joined_stream(chunks: list[dict[str, Any]], n: int = 1) -> dict[str, Any]:
    """What a client assembles per choice, checking on the way that each call's id and name come
    once and before its arguments; ids are kept by position (they are random per request).
    Streams merged and unmerged, or at different intervals, must join to the same."""
    out: dict[str, Any] = {"usage": None, "choices": []}
    for index in range(n):
        joined: dict[str, Any] = {
            "content": "",
            "reasoning": "",
            "calls": {},
            "logprobs": [],
            "finish": [],
        }
        for chunk in chunks:
            for choice in chunk["choices"]:
                if choice["index"] != index:
                    continue
                delta = choice["delta"]
                joined["content"] += delta.get("content") or ""
                joined["reasoning"] += delta.get("reasoning") or ""
                for call in delta.get("tool_calls") or []:
                    entry = joined["calls"].setdefault(call["index"], {"arguments": ""})
                    if "id" in call:
                        assert "name" not in entry, "a call's id and name are sent once"
                        assert entry["arguments"] == "", "the name precedes the arguments"
                        entry["name"] = call["function"]["name"]
                        entry["id_shape"] = call["id"][:5]
                    assert "name" in entry, "arguments of a call whose name was not sent"
                    entry["arguments"] += call["function"]["arguments"]
                if choice["logprobs"] is not None:
                    joined["logprobs"] += choice["logprobs"]["content"]
                if choice["finish_reason"] is not None:
                    joined["finish"].append(choice["finish_reason"])
        out["choices"].append(joined)
    usage = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    out["usage"] = usage
    return out


def delta_chunks(chunks: list[dict[str, Any]]) -> int:
    return sum(
        1 for c in chunks for choice in c["choices"] if choice["delta"] and choice["delta"] != {}
    )
