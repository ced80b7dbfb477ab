"""One background response's generation, run detached from the request that started it.

The runner drives the ordinary Responses path (the endpoint's `_generate`: validation, the
service's admission, planning and engine run, the `Turn` that stores the result) as a streamed
request whose "client" is the event log: every SSE chunk the turn yields is split into its
events and appended to the store (proxy/api/responses/background_store.py), where the POST's
own stream, a poll or a resume on any replica reads it. Nothing about the turn is changed: a
hosted-tool loop or a conversation inside it logs its events like any others.

Its generation is a `Generation` whose client "disconnects" only when the response stops being
active: cancelled (here, or on another replica: the store refuses the next append or lease
renewal), expired or deleted. Then the service's own machinery ends it: the engine request is
aborted, the admission slot released and the outcome recorded once (as a client gone, 499).
The response is kept in the store (queued) only once its request has passed every check and
the caps (`accepted`, just before it waits for admission): a runner that ends before that
raises, so the POST answers with the error as a synchronous request would; after that, every
failure ends the response `failed` in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response

from proxy.api.responses.background_store import BackgroundStore, EventLogFull
from proxy.core import gate
from proxy.core.errors import ProxyError
from proxy.core.request import GenerationRequest
from proxy.core.run import CompletionRun
from proxy.core.service import ClientGone, Generation, GenerationService
from proxy.server.request_log import RequestRecord
from proxy.server.sse import SseResponse, SseStream

logger = logging.getLogger("proxy")

TERMINAL_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed", "response.cancelled"}
)
SERVER_STOPPED = {
    "code": "server_error",
    "message": "The server running this background response stopped before it finished; "
    "create it again.",
}


class BackgroundGeneration(Generation):
    """A generation with no client to watch: it ends early only when `stop` is set.

    Once its request has passed every check and is about to wait for admission, it calls
    `accept(response_id)` (the id the endpoint chose, the request's `completion_id`): that
    keeps the queued response in the store (or refuses it over the caps), and sets `accepted`.
    """

    def __init__(
        self,
        service: GenerationService,
        record: RequestRecord,
        accept: Callable[[str], Awaitable[None]],
        active: Callable[[], Awaitable[bool]],
    ) -> None:
        """`active()`: whether the store still has the response running (not cancelled,
        deleted or expired on any replica)."""
        self.stop = asyncio.Event()
        self.accepted = asyncio.Event()
        self._accept = accept
        self._active = active
        super().__init__(service, record, self.stop.wait)

    async def still_wanted(self) -> bool:
        """Asked just before the result is stored: a cancel or DELETE that landed since the
        last logged event must not leave a stored copy or a conversation turn behind. (Left: one
        landing between this check and the store's write, milliseconds.)"""
        if self.stop.is_set() or not await self._active():
            self.stop.set()
            return False
        return True

    async def _admit_and_start(
        self, request: GenerationRequest, measured: gate.Measured
    ) -> CompletionRun:
        if not self.accepted.is_set():  # (the first run: a response may take several)
            await self._accept(request.completion_id)
            self.accepted.set()
        return await super()._admit_and_start(request, measured)


def event_kind(event: bytes) -> str:
    """`response.output_text.delta` of `event: response.output_text.delta\\ndata: ...`."""
    return event[7 : event.index(b"\n")].decode()


def event_response(event: bytes) -> dict[str, Any]:
    """The Response object a `response.*` lifecycle event carries."""
    return orjson.loads(event[event.index(b"\ndata: ") + 7 :])["response"]


class BackgroundRunner:
    """Runs one response, logs its events, renews its lease; `notify(id)` wakes local readers."""

    def __init__(
        self,
        log: BackgroundStore,
        service: GenerationService,
        record: RequestRecord,
        lease_seconds: float,
        notify: Callable[[str], None],
        keep: Callable[[str, BackgroundRunner], Awaitable[None]],
    ) -> None:
        """`keep(response_id, runner)` stores the queued response once the request is accepted
        (raising the refusal when over the caps)."""
        self.log = log
        self.generation = BackgroundGeneration(service, record, self._accept, self._active)
        self.response_id = ""  # known once accepted
        self.lease_seconds = lease_seconds
        self.notify = notify
        self._keep = keep
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.sequence = 0  # the next event's number (the builder numbers from 0 too)
        self.task: asyncio.Task[None] | None = None

    def lease_until(self) -> float:
        return time.time() + self.lease_seconds

    async def _active(self) -> bool:
        """Whether the response is still running in the store (a renewal: it also says so)."""
        return await asyncio.to_thread(self.log.renew, self.response_id, self.lease_until())

    async def _accept(self, response_id: str) -> None:
        await self._keep(response_id, self)
        self.response_id = response_id
        self._heartbeat_task = asyncio.create_task(self._heartbeat())

    async def run(self, generate: Callable[[Generation], Awaitable[Response]]) -> None:
        """Generate to the end. Raises only what came before `accepted` (the POST's answer)."""
        try:
            await self._generate(generate)
        except Exception as exc:
            if not self.generation.accepted.is_set():
                raise
            await self._fail(exc)
        finally:
            if self._heartbeat_task is not None:
                self._heartbeat_task.cancel()
            self.notify(self.response_id)

    async def _generate(self, generate: Callable[[Generation], Awaitable[Response]]) -> None:
        generation = self.generation
        try:
            async with generation:
                answer = await generate(generation)
                if isinstance(answer, SseResponse):
                    await self._log_stream(answer.stream)
                else:  # a refusal answered as a complete stream (context_length_exceeded)
                    await self._log_chunk(bytes(answer.body))
        except ClientGone:
            pass  # stopped: the store already says why (cancelled, expired, deleted)

    async def _log_stream(self, stream: SseStream) -> None:
        """Log the stream to its end, or until the response stops being active; then close
        the generation (aborting the engine request if unfinished), however this ends."""
        logging_task = asyncio.ensure_future(self._log_all(stream))
        stopped = asyncio.ensure_future(self.generation.stop.wait())
        try:
            await asyncio.wait({logging_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if logging_task.done():
                logging_task.result()
                stream.completed = True
        except ClientGone:
            pass
        finally:
            stopped.cancel()
            if not logging_task.done():
                logging_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ClientGone):
                    await logging_task
            await stream.source.aclose()
            await asyncio.shield(stream.cleanup())

    async def _log_all(self, stream: SseStream) -> None:
        async for chunk in stream.source:
            await self._log_chunk(chunk)

    async def _log_chunk(self, chunk: bytes) -> None:
        events = [piece + b"\n\n" for piece in chunk.split(b"\n\n") if piece.strip()]
        if not events:
            return
        state = None
        for event in events:
            kind = event_kind(event)
            if kind in TERMINAL_EVENTS or kind in ("response.created", "response.in_progress"):
                state = event_response(event)
        kept = await asyncio.to_thread(
            self.log.append, self.response_id, self.sequence, events, state, self.lease_until()
        )
        if not kept:
            self.generation.stop.set()
            raise ClientGone()
        self.sequence += len(events)
        self.notify(self.response_id)

    async def _heartbeat(self) -> None:
        """Renew the lease; a refusal means the response was cancelled, expired or deleted."""
        interval = min(self.lease_seconds / 3, 2.0)
        while True:
            await asyncio.sleep(interval)
            try:
                alive = await asyncio.to_thread(
                    self.log.renew, self.response_id, self.lease_until()
                )
            except Exception:  # noqa: BLE001 - the store is down; the next renewal may succeed
                logger.warning("could not renew the lease of %s", self.response_id, exc_info=True)
                continue
            if not alive:
                self.generation.stop.set()
                return

    async def _fail(self, exc: BaseException) -> None:
        """End the response `failed`, saying why."""
        if isinstance(exc, ProxyError):
            error = {"code": exc.code or exc.error_type, "message": exc.message}
        elif isinstance(exc, EventLogFull):
            error = {"code": "server_error", "message": str(exc)}
        else:
            logger.error("background response %s failed", self.response_id, exc_info=exc)
            error = {"code": "server_error", "message": "The server failed generating it."}
        try:
            await asyncio.to_thread(
                self.log.close, self.response_id, "failed", "response.failed", error
            )
        except Exception:  # noqa: BLE001 - its lease will expire and a reader will fail it
            logger.exception("could not record the failure of %s", self.response_id)
