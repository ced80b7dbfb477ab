"""Realistic Harmony completions to replay through an instant backend (benchmarks, worker tests).

Two completions, chosen by the request: a plain chat answer (reasoning on the analysis channel,
then a final answer) and, when the prompt declares functions, a tool call (reasoning, then a
`functions.get_weather` call with JSON arguments). `completion_tokens(target)` scales the texts
so a completion holds about `target` tokens; both end with their real stop token
(`<|return|>` / `<|call|>`), so the server sees exactly what a model would send.
"""

from __future__ import annotations

import functools
from typing import Any

from proxy.core.conversation import load_encoding

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}

_REASONING = (
    "The user asks about the weather in Paris and what to wear. I should think about the season, "
    "the usual temperatures, the chance of rain and the wind along the river, then give a short, "
    "practical answer with a layered outfit and an umbrella if showers are likely. "
)
_ANSWER = (
    "Paris is mild today: around 14 °C in the afternoon, cooler in the morning, with a light "
    "breeze and a chance of a shower after five. Wear a light sweater under a water-resistant "
    "jacket, comfortable shoes for walking, and keep a small umbrella in your bag. "
)
_TOOL_REASONING = "The user wants the current weather; I should call get_weather for Paris. "


def _repeat_to(text: str, tokens: int) -> str:
    """`text` repeated (and cut on a word) until it encodes to about `tokens` tokens."""
    enc = load_encoding()
    per = max(1, len(enc.encode(text, allowed_special="all")))
    out = text * (tokens // per + 1)
    ids = enc.encode(out, allowed_special="all")[: max(1, tokens)]
    return enc.decode(ids)


@functools.lru_cache(maxsize=16)
def answer_completion(tokens: int = 256) -> tuple[int, ...]:
    """Reasoning (~45 %) then a final answer (~55 %): about `tokens` tokens, ending <|return|>."""
    reasoning = _repeat_to(_REASONING, int(tokens * 0.45) - 6)
    answer = _repeat_to(_ANSWER, tokens - int(tokens * 0.45) - 8)
    text = (
        f"<|channel|>analysis<|message|>{reasoning}<|end|>"
        f"<|start|>assistant<|channel|>final<|message|>{answer}<|return|>"
    )
    return tuple(load_encoding().encode(text, allowed_special="all"))


@functools.lru_cache(maxsize=16)
def tool_call_completion(tokens: int = 256) -> tuple[int, ...]:
    """Reasoning then a `functions.get_weather` call (~30 JSON argument tokens), ending <|call|>."""
    reasoning = _repeat_to(_TOOL_REASONING, max(8, tokens - 50))
    arguments = '{"location": "Paris, France", "unit": "celsius"}'
    text = (
        f"<|channel|>analysis<|message|>{reasoning}<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        f"<|message|>{arguments}<|call|>"
    )
    return tuple(load_encoding().encode(text, allowed_special="all"))


@functools.lru_cache(maxsize=1)
def _functions_marker() -> tuple[int, ...]:
    return tuple(load_encoding().encode("namespace functions", allowed_special="all"))


def declares_functions(prompt_token_ids: list[int]) -> bool:
    """Whether the rendered prompt declares a `functions` namespace (the request has tools)."""
    marker = _functions_marker()
    first, size = marker[0], len(marker)
    start = 0
    while True:
        try:
            at = prompt_token_ids.index(first, start)
        except ValueError:
            return False
        if tuple(prompt_token_ids[at : at + size]) == marker:
            return True
        start = at + 1


def completion_for(prompt_token_ids: list[int], tokens: int = 256) -> tuple[int, ...]:
    """The tool call when the prompt declares functions, else the answer."""
    if declares_functions(prompt_token_ids):
        return tool_call_completion(tokens)
    return answer_completion(tokens)


def chat_request(model: str, *, tools: bool, max_tokens: int = 1024) -> dict[str, Any]:
    """The streaming request the benchmarks send (with or without the weather tool)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "What's the weather in Paris, and what to wear?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
    }
    if tools:
        body["tools"] = [WEATHER_TOOL]
    return body
