"""Helpers of the background-response tests: scripted outputs, polling, reading streams."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from proxy.backends.scripted import Script
from tests.proxy.helpers import toks

ANSWER = (
    "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"
    "<|channel|>final<|message|>Hello there!<|return|>"
)
# Reasoning that goes on (one token per `delay`): a generation to cancel, resume or orphan.
LONG = "<|channel|>analysis<|message|>" + "thinking " * 3000 + "<|end|>"
TERMINAL = {"response.completed", "response.incomplete", "response.failed", "response.cancelled"}


def slow(delay: float = 0.02) -> Script:
    return Script([toks(LONG)], delay=delay)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, period: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(period)
    return value


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The events of a whole SSE body, each with its `event:` name checked against its type."""
    out = []
    for block in response.text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        kind = lines[0].removeprefix("event: ")
        event = json.loads(lines[1].removeprefix("data: "))
        assert event["type"] == kind
        out.append(event)
    return out


def read_events(stream: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The first `count` events of an open SSE response (then stop reading)."""
    out: list[dict[str, Any]] = []
    for line in stream.iter_lines():
        if line.startswith("data: "):
            out.append(json.loads(line.removeprefix("data: ")))
            if len(out) == count:
                break
    return out


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )
