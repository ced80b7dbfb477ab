"""One admitted /v1/responses request: its runs driven through the builder, then kept.

A run that ends with calls to hosted tools (proxy/hosted/: MCP servers, ...) does not end the
response: the calls are run (a round's calls at once), their items completed, and the next
run continues the same response with their results (`Generation.continue_with`: the same
admission slot, usage summed), up to `--max-tool-rounds` rounds and the request's
`max_tool_calls` calls; past either, the calls are not run and the response ends `incomplete`
(reason `max_tool_calls`). A round with calls to the client's own functions, or with a call
waiting for the client's approval, ends the response as a function call always has.

The response is settled (its output, status and usage complete) before the terminal event is
built, and stored in between, so that the terminal event and the non-streamed body both say in
`store` whether it was kept: a response over the row cap, one whose predecessor was deleted
meanwhile, or one the database failed to take is still answered in full, marked
`store: false`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from proxy.api.conversations.link import ConversationLink
from proxy.api.responses.hosted_output import PendingCall
from proxy.api.responses.inputs import Item, to_parts
from proxy.api.responses.output import ResponseBuilder
from proxy.api.responses.store import ResponseStore, RowTooLarge, StoredResponse
from proxy.core.errors import ProxyError
from proxy.core.request import GenerationRequest
from proxy.core.run import CompletionRun, StreamError
from proxy.core.service import Generation
from proxy.hosted.base import HostedResult
from proxy.server.metrics import ProxyMetrics
from proxy.server.sse import LastWrite

logger = logging.getLogger("proxy")


@dataclass(frozen=True)
class Stored:
    """Where and as what a turn's response is kept."""

    store: ResponseStore | None
    owner: str
    previous_response_id: str | None
    history: list[Item]
    """The conversation the response continues (the previous response's)."""
    items: list[Item]
    """This request's normalised input items."""
    lineage: list[str]
    """The stored responses `history` was copied from."""
    conversation: ConversationLink | None = None
    """The conversation the turn is appended to (`conversation`), whose items `history` is."""

    def record(self, response: dict[str, Any]) -> StoredResponse:
        output = [_for_history(item) for item in response["output"]]
        return StoredResponse(
            id=response["id"],
            created_at=float(response["created_at"]),
            response=response,
            input_items=self.items,
            conversation=self.history + self.items + output,
            previous_response_id=self.previous_response_id,
            owner=self.owner,
            lineage=self.lineage,
        )


@dataclass(frozen=True)
class ToolRounds:
    """How a response's hosted tool rounds go on: the next round's request is the first one
    over the whole conversation so far (what `previous_response_id` would render later), with
    `tool_choice` back to auto (a forced choice is the first round's only) and what is left of
    `max_output_tokens`."""

    first: GenerationRequest
    conversation: list[Item]
    """The history and this request's input: what the output continues."""
    instructions: str | None
    history_length: int
    max_rounds: int
    max_calls: int | None = None

    def next_request(self, output: list[Item], spent: int) -> GenerationRequest | None:
        """The next round's request; None when `max_output_tokens` is spent."""
        first = self.first
        sampling = first.sampling
        if sampling.max_tokens is not None:
            left = sampling.max_tokens - spent
            if left < 1:
                return None
            sampling = dataclasses.replace(sampling, max_tokens=left)
        parts = to_parts(self.conversation + output, self.instructions, self.history_length)
        forced = first.named_tool is not None or first.tool_choice == "required"
        return dataclasses.replace(
            first,
            parts=tuple(parts),
            sampling=sampling,
            tool_choice=None if forced else first.tool_choice,
            named_tool=None,
        )


class Turn:
    """Drives a response's runs through the builder (running hosted tools between them),
    then stores the result."""

    def __init__(
        self,
        generation: Generation,
        builder: ResponseBuilder,
        stored: Stored,
        metrics: ProxyMetrics,
        rounds: ToolRounds,
        leading: list[Item] | None = None,
    ) -> None:
        assert generation.run is not None
        self.generation = generation
        self.run = generation.run
        self.builder = builder
        self.stored = stored
        self.metrics = metrics
        self.rounds = rounds
        self.leading = leading or []
        self.error: ProxyError | None = None
        self.finish: str | None = None
        self.incomplete: str | None = None
        self._calls_run = 0

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The response's SSE events, those of steps the run yields at once written at once
        (one socket write, not one per event; the opening events with the first step's); the
        terminal event only once the store has the response."""
        run, rounds = self.run, 0
        began = self.builder.begin(self.leading)  # (written with the first step's events)
        while True:
            tail: list[bytes] = []  # the run's last events, written with the round's end
            async for chunk in self._steps(run, began, tail):
                yield chunk
            began = []
            if self.error is not None or self.finish == "length":
                if tail:
                    yield b"".join(tail)
                break
            tail.extend(self.builder.end_round())
            if tail:
                yield b"".join(tail)
            pending = self.builder.hosted.take()
            if not pending:
                break
            if not self._within_limits(rounds, len(pending)):
                for call in pending:
                    self.builder.hosted.cut(call)
                self.incomplete = "max_tool_calls"
                break
            rounds += 1
            try:
                async for chunk in self._run_calls(pending):
                    yield chunk
            except ProxyError as exc:  # the drain's grace period ended meanwhile
                self.error = exc
                break
            hosted = self.builder.hosted
            if hosted.client_calls or hosted.approvals:
                break  # the client acts next (its function calls, its approval)
            spent = sum(r.usage.completion_tokens for r in self.generation.runs if r.usage)
            following = self.rounds.next_request(self.builder.items(), spent)
            if following is None:
                self.finish = "length"
                break
            hosted.new_round()
            interval = run.interval
            try:
                run = self.run = await self.generation.continue_with(following)
            except ProxyError as exc:
                self.error = exc
                break
            run.interval = interval
        self.builder.settle(self.finish, self.generation.usage, self.error, self.incomplete)
        response = self.builder.response
        # (A failed response is never kept; nor one cancelled or deleted while it finished.)
        keep = self.error is None and await self.generation.still_wanted()
        if response["store"] and keep:
            response["store"] = await self._put(response)
        if keep and self.stored.conversation is not None:
            await self.stored.conversation.append(response)
        yield LastWrite(b"".join(self.builder.terminal()))

    async def drain(self) -> None:
        """The non-streamed answer: every event built, none sent."""
        async for _ in self.events():
            pass

    async def _steps(
        self, run: CompletionRun, began: list[bytes], tail: list[bytes]
    ) -> AsyncGenerator[bytes, None]:
        """The run's events after `began`, those of steps yielded at once (`Step.more`) in
        one write; those the run's end follows at once are left in `tail` for the caller."""
        self.finish = None
        out = list(began)
        async for step in run.steps():
            if isinstance(step, StreamError):
                self.error = step.error
                continue
            if step.choice == 0:
                if step.finish is not None:
                    self.finish = step.finish
                out.extend(self.builder.step(step))
            if out and not step.more:
                yield b"".join(out)
                out = []
        tail.extend(out)

    def _within_limits(self, rounds: int, calls: int) -> bool:
        limit = self.rounds.max_calls
        if limit is not None and self._calls_run + calls > limit:
            return False
        return rounds < self.rounds.max_rounds

    async def _run_calls(self, pending: list[PendingCall]) -> AsyncGenerator[bytes, None]:
        """Run the round's hosted calls at once, each item completed as its call ends."""
        hosted = self.builder.hosted
        for call in pending:
            hosted.running(call)
        yield b"".join(self.builder.take_events())
        self._calls_run += len(pending)
        tasks = {asyncio.ensure_future(_run(call)): call for call in pending}
        try:
            while tasks:
                done, _ = await self.generation.until_drained(
                    asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                )
                for task in done:
                    hosted.complete(tasks.pop(task), task.result())
                yield b"".join(self.builder.take_events())
        finally:
            for task, call in tasks.items():
                task.cancel()
                hosted.cut(call)

    async def _put(self, response: dict[str, Any]) -> bool:
        """Whether the response was kept (the stored copy says `store: true`, as the answer
        then does)."""
        store = self.stored.store
        assert store is not None  # (`store` is true only with a store)
        try:
            kept = await asyncio.to_thread(store.put, self.stored.record(response))
        except RowTooLarge as exc:
            # Known only now, so not a 400: the client has its answer, marked `store: false`.
            logger.warning("not storing a response: %s", exc)
            return False
        except Exception:  # noqa: BLE001 - the answer stands; only its continuation is lost
            # The client still gets its complete answer (with a streamed one, the terminal
            # event); a later previous_response_id to it is a 404. Logged loudly: the store
            # (a database) is down or full.
            logger.exception("could not store response %s", response["id"])
            self.metrics.internal_errors.inc()
            return False
        if not kept:
            logger.info("not storing %s: the response it continues was deleted", response["id"])
        return kept


async def _run(pending: PendingCall) -> HostedResult:
    """One hosted call; a toolset that raises (a bug: tools' own failures are results) fails
    the call, not the response."""
    try:
        return await pending.toolset.run(pending.call)
    except Exception:  # noqa: BLE001 - the response goes on without this call's result
        logger.exception("hosted tool %s failed", pending.call.key)
        return HostedResult("Error: the tool failed inside the server.", {}, "internal error")


def _for_history(item: Item) -> Item:
    """An output item as the next turn reads it (the sealed copy is not needed server-side)."""
    return {k: v for k, v in item.items() if k != "encrypted_content"}
