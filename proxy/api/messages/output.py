"""The Messages rendering of the neutral steps: content blocks, and Anthropic's SSE events.

One Harmony message is one content block: an analysis message a `thinking` block (its text,
unless `display: "omitted"`, and its `signature`: the analysis sealed under the server's key),
a final answer or a preamble a `text` block, a call a `tool_use` block (`toolu_…`). Streaming
emits exactly Anthropic's sequence:

    message_start, ping,
    per block: content_block_start, content_block_delta* (thinking_delta then one
      signature_delta; text_delta; input_json_delta), content_block_stop,
    message_delta (stop_reason, stop_sequence, usage), message_stop

and an error after the start is one `error` event that ends the stream. The non-streamed
message is the same builder's final object, so the two always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from proxy.api.messages.errors import error_payload
from proxy.core.errors import ProxyError
from proxy.core.events import CallArguments, CallEnd, CallStart, Step, Text, Usage

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}


def sse(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessageBuilder:
    """Turns one run's steps into content blocks and (when `stream`) SSE event bytes."""

    def __init__(
        self,
        message_id: str,
        model: str,
        *,
        seal: Callable[[str], str],
        show_thinking: bool,
        stream: bool,
    ) -> None:
        self.message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": None,
        }
        self._seal = seal
        self._show_thinking = show_thinking
        self._stream = stream
        self._open: dict[str, Any] | None = None  # the block being streamed
        self._source: tuple[str, int] | None = None  # ("text"/"thinking", item) or ("call", n)
        self._pieces: list[str] = []
        self._events: list[bytes] = []

    # ------------------------------------------------------------------ events in order

    def begin(self, prompt_tokens: int) -> list[bytes]:
        start = dict(self.message, usage=_usage(prompt_tokens, 0, None))
        self._emit("message_start", message=start)
        if self._stream:
            self._events.append(PING)
        return self._take()

    def step(self, step: Step) -> list[bytes]:
        for event in step.events:
            if type(event) is Text:
                self._text(event)
            elif type(event) is CallStart:
                self._close()
                self._start(("call", event.call), _tool_use(event))
                if event.arguments:
                    self._call_arguments(event.arguments)
            elif type(event) is CallArguments:
                if self._source == ("call", event.call):
                    self._call_arguments(event.text)
            elif type(event) is CallEnd and self._source == ("call", event.call):
                self._close()
        return self._take()

    def finish(
        self,
        finish_reason: str | None,
        stop_sequence: str | None,
        usage: Usage | None,
        error: ProxyError | None,
    ) -> list[bytes]:
        """Close the open block and end the message: message_delta and message_stop, or the
        one `error` event when the run failed after the start."""
        self._close()
        if error is not None:
            self._emit_raw("error", error_payload(error)[1])
            return self._take()
        called = any(block["type"] == "tool_use" for block in self.message["content"])
        if finish_reason == "length":
            reason = "max_tokens"
        elif stop_sequence is not None:
            reason = "stop_sequence"
        elif called:
            reason = "tool_use"
        else:
            reason = _STOP_REASONS.get(finish_reason or "", "end_turn")
        message = self.message
        message["stop_reason"] = reason
        message["stop_sequence"] = stop_sequence
        if usage is not None:
            message["usage"] = _usage(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
            )
        self._emit(
            "message_delta",
            delta={"stop_reason": reason, "stop_sequence": stop_sequence},
            usage=message["usage"],
        )
        self._emit("message_stop")
        return self._take()

    # ------------------------------------------------------------------ blocks

    def _text(self, event: Text) -> None:
        kind = "thinking" if event.kind == "reasoning" else "text"
        if self._source != (kind, event.item):
            self._close()
            block = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == "thinking"
                else {"type": "text", "text": ""}
            )
            self._start((kind, event.item), block)
        self._pieces.append(event.text)
        if kind == "text":
            self._delta({"type": "text_delta", "text": event.text})
        elif self._show_thinking:
            self._delta({"type": "thinking_delta", "thinking": event.text})

    def _call_arguments(self, text: str) -> None:
        self._pieces.append(text)
        self._delta({"type": "input_json_delta", "partial_json": text})

    def _start(self, source: tuple[str, int], block: dict[str, Any]) -> None:
        self._open, self._source, self._pieces = block, source, []
        self._emit("content_block_start", index=self._index(), content_block=block)

    def _close(self) -> None:
        block, self._open, self._source = self._open, None, None
        if block is None:
            return
        text = "".join(self._pieces)
        if block["type"] == "thinking":
            signature = self._seal(text)
            self._delta({"type": "signature_delta", "signature": signature})
            block = dict(block, thinking=text if self._show_thinking else "", signature=signature)
        elif block["type"] == "text":
            block = dict(block, text=text)
        else:
            block = dict(block, input=_arguments(text))
        self._emit("content_block_stop", index=self._index())
        self.message["content"].append(block)

    def _index(self) -> int:
        return len(self.message["content"])

    def _delta(self, delta: dict[str, Any]) -> None:
        self._emit("content_block_delta", index=self._index(), delta=delta)

    # ------------------------------------------------------------------ plumbing

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._stream:
            self._events.append(sse(kind, {"type": kind, **fields}))

    def _emit_raw(self, kind: str, payload: dict[str, Any]) -> None:
        if self._stream:
            self._events.append(sse(kind, payload))

    def _take(self) -> list[bytes]:
        events, self._events = self._events, []
        return events


def _tool_use(event: CallStart) -> dict[str, Any]:
    suffix = event.id.removeprefix("call_")
    return {"type": "tool_use", "id": f"toolu_{suffix}", "name": event.name, "input": {}}


def _arguments(text: str) -> dict[str, Any]:
    """A call's input as an object; arguments cut short (max_tokens) or not an object: {}."""
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage(prompt: int, output: int, cached: int | None) -> dict[str, Any]:
    """Anthropic counts cache reads apart from `input_tokens` (the total is their sum)."""
    read = cached or 0
    return {
        "input_tokens": prompt - read,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": read,
        "output_tokens": output,
    }
