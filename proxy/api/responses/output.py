"""The Responses rendering of the neutral steps: output items, and the named SSE events.

One Harmony message becomes one output item: an analysis message a `reasoning` item, a final
answer or preamble a `message` item, a call a `function_call` (or `custom_tool_call`) item.
Streaming emits, in order and each with a `sequence_number`: `response.created`,
`response.in_progress`, then per item `response.output_item.added`, its content events
(`response.content_part.added`, `response.output_text.delta` / `.done` or
`response.reasoning_text.delta` / `.done`, `response.content_part.done`;
`response.function_call_arguments.delta` / `.done` for calls; a hosted tool's call has its own
item and events: hosted_output.py), `response.output_item.done`, and
last exactly one of `response.completed`, `response.incomplete` (cut by max_output_tokens) or
`response.failed` (an error after the stream began). The non-streamed response is the same
builder's final object, so the two always agree.

With `include: ["reasoning.encrypted_content"]`, each finished reasoning item also carries its
text sealed under the server's key (proxy/core/sealing.py), for clients that keep no state
(`store: false`) and replay it next turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.api.responses.hosted_output import HostedItems
from proxy.api.responses.inputs import new_id
from proxy.core.errors import ProxyError
from proxy.core.events import CallArguments, CallEnd, CallStart, Step, Text, Usage
from proxy.core.tools import FunctionTool
from proxy.hosted.base import HostedTools


@dataclass
class _OpenItem:
    """An output item whose `added` event went out and whose `done` has not."""

    kind: str  # "reasoning" | "message" | "function_call" | "custom_tool_call"
    source: int  # the Harmony message (text items) or the call number (calls)
    output_index: int
    item: dict[str, Any]
    text: list[str] = field(default_factory=list)


class ResponseBuilder:
    """Turns one run's steps into output items and (when `stream`) SSE event bytes."""

    def __init__(
        self,
        response: dict[str, Any],
        tools: dict[str, FunctionTool],
        *,
        seal: Callable[[str], str] | None,
        stream: bool,
        hosted: HostedTools | None = None,
    ) -> None:
        self.response = response
        self._tools = tools
        self._seal = seal
        self._stream = stream
        self._sequence = 0
        self._text_item: _OpenItem | None = None
        self._calls: dict[int, _OpenItem] = {}
        self._output: dict[int, dict[str, Any]] = {}
        self._next_index = 0
        self._events: list[bytes] = []
        # Calls to tools the proxy runs itself (proxy/api/responses/hosted_output.py).
        self.hosted = HostedItems(
            hosted or HostedTools(), claim=self._claim_index, emit=self._emit, done=self._done
        )

    # ------------------------------------------------------------------ events in order

    def begin(self, leading: list[dict[str, Any]] | None = None) -> list[bytes]:
        """The opening events, then `leading` items made before generation (MCP listings,
        calls approved in this request)."""
        self._emit("response.created", response=self._snapshot())
        self._emit("response.in_progress", response=self._snapshot())
        self.hosted.leading(leading or [])
        return self._take()

    def end_round(self) -> list[bytes]:
        """A run ended and its hosted calls are to be run: close what it left open (the next
        run numbers its messages and calls afresh)."""
        self._close_text()
        for call in list(self._calls):
            self._call_end(call, "completed")
        self.hosted.close_open()
        return self._take()

    def items(self) -> list[dict[str, Any]]:
        """The finished output items so far, in order."""
        return [self._output[i] for i in sorted(self._output)]

    def take_events(self) -> list[bytes]:
        """Events emitted outside `step` (hosted calls running and completing)."""
        return self._take()

    def step(self, step: Step) -> list[bytes]:
        for event in step.events:
            if type(event) is Text:
                self._text(event)
            elif type(event) is CallStart:
                self._call_start(event)
            elif type(event) is CallArguments:
                self._call_arguments(event.call, event.text)
            elif type(event) is CallEnd:
                self._call_end(event.call, "completed" if event.complete else "incomplete")
        return self._take()

    def finish(
        self, finish_reason: str | None, usage: Usage | None, error: ProxyError | None
    ) -> list[bytes]:
        """Close what is open and emit the one terminal event."""
        self.settle(finish_reason, usage, error)
        return self.terminal()

    def settle(
        self,
        finish_reason: str | None,
        usage: Usage | None,
        error: ProxyError | None,
        incomplete: str | None = None,
    ) -> None:
        """Close what is open and complete `response`, emitting nothing yet: the endpoint
        stores the response in between and may correct its `store` field. `incomplete`: why
        the response stopped short otherwise (its hosted tool-call limit)."""
        cut = finish_reason == "length" or error is not None
        self._close_text("incomplete" if cut else "completed")
        for call in list(self._calls):
            self._call_end(call, "incomplete" if cut else "completed")
        self.hosted.close_open()
        response = self.response
        response["output"] = self.items()
        response["output_text"] = "".join(
            part["text"]
            for item in response["output"]
            if item["type"] == "message" and item.get("phase") != "commentary"
            for part in item["content"]
        )
        if usage is not None:
            response["usage"] = {
                "input_tokens": usage.prompt_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
                "output_tokens": usage.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
                "total_tokens": usage.total_tokens,
            }
        if error is not None:
            response["status"] = "failed"
            response["error"] = {"code": error.code or error.error_type, "message": error.message}
        elif finish_reason == "length" or incomplete is not None:
            response["status"] = "incomplete"
            response["incomplete_details"] = {"reason": incomplete or "max_output_tokens"}
        else:
            response["status"] = "completed"

    def terminal(self) -> list[bytes]:
        """The one terminal event of a settled response."""
        response = self.response
        self._emit(f"response.{response['status']}", response=response)
        return self._take()

    # ------------------------------------------------------------------ text items

    def _text(self, event: Text) -> None:
        kind = "reasoning" if event.kind == "reasoning" else "message"
        current = self._text_item
        if current is None or current.kind != kind or current.source != event.item:
            self._close_text()
            current = self._text_item = self._open_text(kind, event.item, event.final)
        current.text.append(event.text)
        if kind == "reasoning":
            self._emit(
                "response.reasoning_text.delta",
                item_id=current.item["id"],
                output_index=current.output_index,
                content_index=0,
                delta=event.text,
            )
        else:
            self._emit(
                "response.output_text.delta",
                item_id=current.item["id"],
                output_index=current.output_index,
                content_index=0,
                delta=event.text,
                logprobs=[],
            )

    def _open_text(self, kind: str, source: int, final: bool) -> _OpenItem:
        if kind == "reasoning":
            item = {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            part: dict[str, Any] = {"type": "reasoning_text", "text": ""}
        else:
            item = {
                "id": new_id("msg"),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
                # A preamble before a call is commentary; clients (the SDK's `parse`, the
                # output_text of a json_schema answer) read only the final answer.
                "phase": "final_answer" if final else "commentary",
            }
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        opened = _OpenItem(kind, source, self._claim_index(), item)
        self._emit("response.output_item.added", output_index=opened.output_index, item=item)
        self._emit(
            "response.content_part.added",
            item_id=item["id"],
            output_index=opened.output_index,
            content_index=0,
            part=part,
        )
        return opened

    def _close_text(self, status: str = "completed") -> None:
        current, self._text_item = self._text_item, None
        if current is None:
            return
        text = "".join(current.text)
        item = dict(current.item, status=status)
        common = {"item_id": item["id"], "output_index": current.output_index, "content_index": 0}
        if current.kind == "reasoning":
            part: dict[str, Any] = {"type": "reasoning_text", "text": text}
            self._emit("response.reasoning_text.done", **common, text=text)
            item["content"] = [part]
            if self._seal is not None:
                item["encrypted_content"] = self._seal(text)
        else:
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self._emit("response.output_text.done", **common, text=text, logprobs=[])
            item["content"] = [part]
        self._emit("response.content_part.done", **common, part=part)
        self._done(current.output_index, item)

    # ------------------------------------------------------------------ call items

    def _call_start(self, event: CallStart) -> None:
        self._close_text()
        if self.hosted.start(event):
            return
        tool = self._tools.get(event.name)
        freeform = tool is not None and tool.freeform
        kind = "custom_tool_call" if freeform else "function_call"
        item: dict[str, Any] = {
            "id": new_id("ctc" if freeform else "fc"),
            "type": kind,
            "status": "in_progress",
            "call_id": event.id,
            "name": tool.name if tool is not None else event.name,
            ("input" if freeform else "arguments"): "",
        }
        if tool is not None and tool.namespace is not None:
            item["namespace"] = tool.namespace
        opened = self._calls[event.call] = _OpenItem(kind, event.call, self._claim_index(), item)
        self._emit("response.output_item.added", output_index=opened.output_index, item=item)
        if event.arguments:
            self._call_arguments(event.call, event.arguments)

    def _call_arguments(self, call: int, text: str) -> None:
        if self.hosted.owns(call):
            self.hosted.arguments(call, text)
            return
        opened = self._calls[call]
        opened.text.append(text)
        name = (
            "response.custom_tool_call_input.delta"
            if opened.kind == "custom_tool_call"
            else "response.function_call_arguments.delta"
        )
        self._emit(name, item_id=opened.item["id"], output_index=opened.output_index, delta=text)

    def _call_end(self, call: int, status: str) -> None:
        if self.hosted.owns(call):
            self.hosted.end(call, status == "completed")
            return
        opened = self._calls.pop(call, None)
        if opened is None:
            return
        text = "".join(opened.text)
        common = {"item_id": opened.item["id"], "output_index": opened.output_index}
        if opened.kind == "custom_tool_call":
            item = dict(opened.item, status=status, input=text)
            self._emit("response.custom_tool_call_input.done", **common, input=text)
        else:
            item = dict(opened.item, status=status, arguments=text)
            self._emit(
                "response.function_call_arguments.done",
                **common,
                name=item["name"],
                arguments=text,
            )
        self._done(opened.output_index, item)

    # ------------------------------------------------------------------ plumbing

    def _claim_index(self) -> int:
        index, self._next_index = self._next_index, self._next_index + 1
        return index

    def _done(self, output_index: int, item: dict[str, Any]) -> None:
        self._output[output_index] = item
        self._emit("response.output_item.done", output_index=output_index, item=item)

    def _snapshot(self) -> dict[str, Any]:
        return dict(self.response, output=[])

    def _emit(self, kind: str, **fields: Any) -> None:
        sequence, self._sequence = self._sequence, self._sequence + 1
        if not self._stream:
            return
        payload = orjson.dumps({"type": kind, "sequence_number": sequence, **fields})
        self._events.append(b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n")

    def _take(self) -> list[bytes]:
        events, self._events = self._events, []
        return events
