"""One admitted /v1/responses request: its run driven through the builder, then kept.

The response is settled (its output, status and usage complete) before the terminal event is
built, and stored in between, so that the terminal event and the non-streamed body both say in
`store` whether it was kept: a response over the row cap, one whose predecessor was deleted
meanwhile, or one the database failed to take is still answered in full, marked
`store: false`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from proxy.api.conversations.link import ConversationLink
from proxy.api.responses.inputs import Item
from proxy.api.responses.output import ResponseBuilder
from proxy.api.responses.store import ResponseStore, RowTooLarge, StoredResponse
from proxy.core.errors import ProxyError
from proxy.core.run import CompletionRun, StreamError
from proxy.server.metrics import ProxyMetrics

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


class Turn:
    """Drives one run through the builder, then stores the result."""

    def __init__(
        self,
        run: CompletionRun,
        builder: ResponseBuilder,
        stored: Stored,
        metrics: ProxyMetrics,
    ) -> None:
        self.run = run
        self.builder = builder
        self.stored = stored
        self.metrics = metrics
        self.error: ProxyError | None = None
        self.finish: str | None = None

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The response's SSE events, those of one engine step written at once (one socket
        write, not one per event); the terminal event only once the store has the response."""
        yield b"".join(self.builder.begin())
        async for step in self.run.steps():
            if isinstance(step, StreamError):
                self.error = step.error
                continue
            if step.choice != 0:
                continue
            if step.finish is not None:
                self.finish = step.finish
            events = self.builder.step(step)
            if events:
                yield b"".join(events)
        self.builder.settle(self.finish, self.run.usage, self.error)
        response = self.builder.response
        if response["store"] and self.error is None:  # (a failed response is never kept)
            response["store"] = await self._put(response)
        if self.error is None and self.stored.conversation is not None:
            await self.stored.conversation.append(response)
        yield b"".join(self.builder.terminal())

    async def drain(self) -> None:
        """The non-streamed answer: every event built, none sent."""
        async for _ in self.events():
            pass

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


def _for_history(item: Item) -> Item:
    """An output item as the next turn reads it (the sealed copy is not needed server-side)."""
    return {k: v for k, v in item.items() if k != "encrypted_content"}
