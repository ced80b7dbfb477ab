"""Shared request shapes and polling for the replica tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from proxy.backends.pool import ReplicaPool

MAX = 120
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "City name"}},
            "required": ["location"],
        },
    },
}
# A grammar the demo model cannot finish early: hundreds of tokens, so a stream stays in flight.
LONG_JSON = {
    "type": "json_schema",
    "json_schema": {
        "name": "numbers",
        "schema": {
            "type": "object",
            "properties": {
                "numbers": {"type": "array", "minItems": 200, "items": {"type": "integer"}}
            },
            "required": ["numbers"],
        },
    },
}
# Long enough to fill several of the replicas' KV blocks, so a repeated prefix is a cache hit.
LONG_INSTRUCTIONS = " ".join(
    f"Rule {i}: answer briefly, politely and in plain English about topic number {i}."
    for i in range(40)
)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def requests_per_replica(pool: ReplicaPool) -> list[int]:
    return [r.requests for r in pool.replicas]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 600) -> None:
    """Poll until `condition()` holds (a generous deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)
