"""The output items and events of hosted tool calls (proxy/hosted/), for one `ResponseBuilder`.

A call to a hosted tool is shown as its toolset's item (`mcp_call`, `code_interpreter_call`...)
instead of a `function_call`, with OpenAI's events for it, e.g. for MCP:
`response.output_item.added`, `response.mcp_call.in_progress`,
`response.mcp_call_arguments.delta` / `.done` while the model writes the arguments; once the
call has run, `response.mcp_call.completed` (or `.failed`) and `response.output_item.done`
with its `output` or `error`. A call that waits for the client's approval is an
`mcp_approval_request` item instead (added, then done with its arguments), and is not run.
Items a toolset made before generation (`mcp_list_tools`, calls approved in this request) are
shown first, each with its type's `in_progress` and `completed`/`failed` events.

The builder owns the numbering and the emitting (it hands over `claim`, `emit` and `done`);
this class only decides what to emit for hosted calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.api.responses.inputs import new_id
from proxy.core.events import CallStart
from proxy.hosted.base import HostedCall, HostedResult, HostedTools, HostedToolset

Item = dict[str, Any]


@dataclass
class _OpenItem:
    """A hosted call's item whose `added` event went out and whose `done` has not."""

    kind: str  # "hosted" | "approval"
    output_index: int
    item: Item
    text: list[str] = field(default_factory=list)


@dataclass
class PendingCall:
    """A hosted call whose arguments are complete: to be run, then completed."""

    call: HostedCall
    toolset: HostedToolset
    opened: _OpenItem


class HostedItems:
    """Hosted calls' items for one builder; `client_calls` and `approvals` count the current
    round's calls that end the response (the client must act on them)."""

    def __init__(
        self,
        hosted: HostedTools,
        *,
        claim: Callable[[], int],
        emit: Callable[..., None],
        done: Callable[[int, Item], None],
    ) -> None:
        self._hosted = hosted
        self._claim = claim
        self._emit = emit
        self._done = done
        # call number -> (toolset, item, the model's call id, the tool key)
        self._open: dict[int, tuple[HostedToolset, _OpenItem, str, str]] = {}
        self._finished: list[PendingCall] = []
        self.client_calls = 0
        self.approvals = 0

    def start(self, event: CallStart) -> bool:
        """Open the item of a call if a hosted toolset owns it (False: a client function)."""
        toolset = self._hosted.owner_of(event.name)
        if toolset is None:
            self.client_calls += 1
            return False
        fields = toolset.start_item(HostedCall(event.id, event.name, ""))
        if toolset.needs_approval(event.name):
            item: dict[str, Any] = {
                "id": new_id("mcpr"),
                "type": "mcp_approval_request",
                "server_label": fields.get("server_label"),
                "name": fields.get("name"),
                "arguments": "",
            }
            opened = _OpenItem("approval", self._claim(), item)
            self._emit("response.output_item.added", output_index=opened.output_index, item=item)
        else:
            events = toolset.events
            item = {
                "id": new_id(toolset.id_prefix),
                "type": toolset.item_type,
                "status": "in_progress",
                events.arguments_field: "",
                **fields,
            }
            opened = _OpenItem("hosted", self._claim(), item)
            self._emit("response.output_item.added", output_index=opened.output_index, item=item)
            self._item_event(toolset, opened, "in_progress")
        self._open[event.call] = (toolset, opened, event.id, event.name)
        if event.arguments:
            self.arguments(event.call, event.arguments)
        return True

    def owns(self, call: int) -> bool:
        return call in self._open

    def arguments(self, call: int, text: str) -> None:
        toolset, opened, _, _ = self._open[call]
        opened.text.append(text)
        prefix = toolset.events.arguments
        if opened.kind == "hosted" and prefix is not None:
            self._emit(
                f"{prefix}.delta",
                item_id=opened.item["id"],
                output_index=opened.output_index,
                delta=text,
            )

    def end(self, call: int, complete: bool) -> None:
        """The model finished writing the call (`complete`), or was cut off: such a call is
        not run, its item ends `incomplete`."""
        toolset, opened, call_id, key = self._open.pop(call)
        text = "".join(opened.text)
        if opened.kind == "approval":
            self.approvals += 1
            self._done(opened.output_index, dict(opened.item, arguments=text))
            return
        events = toolset.events
        opened.item[events.arguments_field] = text
        if events.arguments is not None:
            self._emit(
                f"{events.arguments}.done",
                item_id=opened.item["id"],
                output_index=opened.output_index,
                **{events.arguments_field: text},
            )
        if not complete:
            self._done(opened.output_index, dict(opened.item, status="incomplete"))
            return
        self._finished.append(PendingCall(HostedCall(call_id, key, text), toolset, opened))

    def close_open(self) -> None:
        """Calls still being written when a run ended: cut off."""
        for call in list(self._open):
            self.end(call, complete=False)

    def take(self) -> list[PendingCall]:
        """The round's complete hosted calls (each taken once)."""
        taken, self._finished = self._finished, []
        return taken

    def new_round(self) -> None:
        self.client_calls = 0
        self.approvals = 0

    def running(self, pending: PendingCall) -> None:
        working = pending.toolset.events.working
        if working is not None:
            self._item_event(pending.toolset, pending.opened, working)

    def complete(self, pending: PendingCall, result: HostedResult) -> None:
        opened = pending.opened
        failed = result.error is not None
        item = {**opened.item, **result.item_fields, "status": "failed" if failed else "completed"}
        events = pending.toolset.events
        self._item_event(
            pending.toolset, opened, "failed" if failed and events.failed_event else "completed"
        )
        self._done(opened.output_index, item)

    def cut(self, pending: PendingCall) -> None:
        """A call not run (the response's tool-call limit): its item ends `incomplete`."""
        opened = pending.opened
        self._done(opened.output_index, dict(opened.item, status="incomplete"))

    def leading(self, items: list[dict[str, Any]]) -> None:
        """Items made before generation, shown first with their type's events."""
        for item in items:
            index = self._claim()
            common = {"item_id": item["id"], "output_index": index}
            self._emit("response.output_item.added", output_index=index, item=item)
            self._emit(f"response.{item['type']}.in_progress", **common)
            outcome = "failed" if item.get("error") else "completed"
            self._emit(f"response.{item['type']}.{outcome}", **common)
            self._done(index, item)

    def _item_event(self, toolset: HostedToolset, opened: _OpenItem, name: str) -> None:
        self._emit(
            f"{toolset.events.item}.{name}",
            item_id=opened.item["id"],
            output_index=opened.output_index,
        )
