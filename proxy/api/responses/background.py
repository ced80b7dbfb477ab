"""Background responses: `background: true` on POST /v1/responses, the poll, resume and cancel.

OpenAI's API (the `openai` SDK's `responses.create(background=True)`, `retrieve(stream=True,
starting_after=N)`, `cancel`):

- `background: true` needs `store` (a 400 without it, and with `--response-store off`). The
  request is checked as a synchronous one would be (a bad request is still a 400), then returns
  at once: the Response object with `status: "queued"`, or with `stream: true` the events as
  they are generated. The generation runs detached (proxy/api/responses/background_run.py):
  a client that leaves does not stop it.
- `GET /v1/responses/{id}` polls it: queued → in_progress → completed, incomplete, failed or
  cancelled. `GET ...?stream=true&starting_after=N` streams its events from N+1, on any replica
  sharing the store (the log is read from the store, polled with a short backoff, woken at
  once when this replica wrote it); past the end it gives the closing event. A response that
  was not created in the background cannot be streamed again (400, `param: stream`).
- `POST /v1/responses/{id}/cancel` stops it, on whichever replica runs it (the store's status
  is the flag its runner reads), and answers the response, `cancelled`. Cancelling it again
  answers the same; a finished one is a 400 ("Cannot cancel a completed response."), and so is
  a response created without `background`.
- A proxy that dies leaves its runs' leases to expire: the first reader then marks them
  `failed` ("The server running this background response stopped..."), as does every
  replica's start-up sweep. A draining proxy gives them the drain's grace period like any
  request, then they end `failed` with the drain's error; at shutdown, any still open are
  failed the same way.
- Owner-scoped like stored responses: another owner's id answers exactly as an unknown id.
  At most `background_max_per_owner` and `background_max_total` run at once (429).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from proxy.api.responses.background_run import SERVER_STOPPED, BackgroundRunner
from proxy.api.responses.background_store import BackgroundLimit, BackgroundRow, BackgroundStore
from proxy.api.responses.background_tail import EventTail
from proxy.api.responses.endpoint import ResponsesEndpoint, _initial_response
from proxy.api.responses.schema import ResponsesRequest
from proxy.api.responses.store import ResponseStore
from proxy.core.caller import caller_of
from proxy.core.errors import InvalidRequest, ResponseNotFound, TooManyRequests
from proxy.core.service import Generation
from proxy.server.request_log import RequestRecord
from proxy.server.settings import ProxyConfig
from proxy.server.sse import SseResponse, SseStream


class BackgroundResponses:
    """The routes of /v1/responses that know about background responses; the rest is the
    endpoint's (`responses`). `log` is None when the server stores nothing."""

    def __init__(
        self,
        responses: ResponsesEndpoint,
        log: BackgroundStore | None,
    ) -> None:
        self.responses = responses
        self.log = log
        config = responses.config
        self.lease_seconds = config.background_lease_seconds
        self.max_per_owner = config.background_max_per_owner
        self.max_total = config.background_max_total
        self._running: dict[str, BackgroundRunner] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._tail = EventTail(log, self._row)
        self._notify = self._tail.notify

    # ------------------------------------------------------------------ POST

    async def create(self, body: ResponsesRequest, request: Request) -> Response:
        if not body.background:
            return await self.responses.create(body, request)
        if not body.store:
            raise InvalidRequest(
                "Background responses require `store: true` (a background response is kept "
                "so that it can be polled, resumed and cancelled).",
                param="background",
            )
        log = self.log
        if log is None:
            raise InvalidRequest(
                "This server stores no responses (it runs with --response-store off), so it "
                "cannot run background responses: send the request without `background`.",
                param="background",
            )
        caller = caller_of(request)
        queued: dict[str, Any] = {}

        async def keep(response_id: str, runner: BackgroundRunner) -> None:
            """The request passed every check: keep it, queued (unless over the caps)."""
            queued.update(_initial_response(body, response_id, stored=True), status="queued")
            try:
                await asyncio.to_thread(
                    log.create,
                    queued,
                    caller.owner,
                    runner.lease_until(),
                    max_per_owner=self.max_per_owner,
                    max_total=self.max_total,
                )
            except BackgroundLimit as exc:
                who = "this API key" if exc.scope == "owner" else "this server"
                raise TooManyRequests(
                    f"Too many background responses running for {who} (at most "
                    f"{exc.limit}); wait for one to finish or cancel one.",
                    retry_after=1,
                ) from None
            self._running[response_id] = runner

        record = RequestRecord(
            id=getattr(request.state, "request_id", None) or secrets.token_hex(12),
            api="responses",
            model=body.model,
            stream=body.stream,
            caller=caller,
        )
        runner = BackgroundRunner(
            log, self.responses.service, record, self.lease_seconds, self._notify, keep
        )
        streamed = body.model_copy(update={"stream": True})
        generate = self.responses._generate

        def run(generation: Generation) -> Awaitable[Response]:
            return generate(streamed, request, generation)

        task = runner.task = asyncio.create_task(runner.run(run))
        self._tasks.add(task)
        task.add_done_callback(lambda _: self._finished(runner, task))
        accepted = asyncio.create_task(runner.generation.accepted.wait())
        await asyncio.wait({task, accepted}, return_when=asyncio.FIRST_COMPLETED)
        accepted.cancel()
        if not runner.generation.accepted.is_set():  # refused: answered as a synchronous one
            failure = None if task.cancelled() else task.exception()
            raise failure or RuntimeError("a background response ended unaccepted")
        if body.stream:
            return self._stream(runner.response_id, caller.owner, -1)
        return JSONResponse(queued)

    def _finished(self, runner: BackgroundRunner, task: asyncio.Task[None]) -> None:
        self._running.pop(runner.response_id, None)
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # (read: the POST re-raised it, or it was recorded as failed)

    # ------------------------------------------------------------------ GET

    async def retrieve(
        self,
        response_id: str,
        request: Request,
        stream: bool = False,
        starting_after: int | None = None,
    ) -> Response:
        owner = caller_of(request).owner
        row = await self._row(response_id, owner)
        if not stream:
            if row is None:
                return await self.responses.retrieve(response_id, request)
            return JSONResponse(row.response)
        if row is None:
            await self.responses.retrieve(response_id, request)  # (404 when unknown)
            raise InvalidRequest(
                "Only a response created with `background: true` can be streamed again; "
                "retrieve it without `stream`.",
                param="stream",
            )
        # (Clamped to what a database integer holds: past the end is past the end.)
        after = -1 if starting_after is None else max(-1, min(starting_after, 2**62))
        return self._stream(response_id, owner, after, close=self._tail.admit(owner))

    def _stream(
        self,
        response_id: str,
        owner: str,
        after: int,
        close: Callable[[bool], Awaitable[None]] | None = None,
    ) -> SseResponse:
        config = self.responses.config
        return SseResponse(
            SseStream(self._tail.follow(response_id, owner, after), close=close or _nothing),
            ping=config.sse_ping_seconds or 0,
            send_timeout=config.send_timeout_seconds,
        )

    async def _row(self, response_id: str, owner: str) -> BackgroundRow | None:
        """`owner`'s background row, failed first if its lease has expired."""
        if self.log is None:
            return None
        row = await asyncio.to_thread(self.log.get, response_id, owner)
        if row is not None and row.lease_expired(time.time()):
            row = await self._expire(response_id) or row
        return row

    async def _expire(self, response_id: str) -> BackgroundRow | None:
        assert self.log is not None
        row = await asyncio.to_thread(
            self.log.close,
            response_id,
            "failed",
            "response.failed",
            SERVER_STOPPED,
            expired_before=time.time(),
        )
        self._notify(response_id)
        return row

    # ------------------------------------------------------------------ cancel / delete

    async def cancel(self, response_id: str, request: Request) -> Response:
        owner = caller_of(request).owner
        row = await self._row(response_id, owner)
        if row is None:
            await self.responses.retrieve(response_id, request)  # (404 when unknown)
            raise InvalidRequest(
                "Only responses created with `background: true` can be cancelled.",
                param="response_id",
            )
        if row.active:
            assert self.log is not None
            closed = await asyncio.to_thread(
                self.log.close, response_id, "cancelled", "response.cancelled", owner=owner
            )
            row = closed or row
            runner = self._running.get(response_id)
            if runner is not None:
                runner.generation.stop.set()
            self._notify(response_id)
        if row.status != "cancelled":
            raise InvalidRequest(f"Cannot cancel a {row.status} response.", param="response_id")
        return JSONResponse(row.response)

    async def delete(self, response_id: str, request: Request) -> Response:
        owner = caller_of(request).owner
        deleted = False
        if self.log is not None:
            deleted = await asyncio.to_thread(self.log.delete, response_id, owner)
        runner = self._running.get(response_id)
        if deleted and runner is not None:
            runner.generation.stop.set()
        self._notify(response_id)
        try:
            return await self.responses.delete(response_id, request)
        except ResponseNotFound:
            if not deleted:
                raise
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})

    # ------------------------------------------------------------------ life of the server

    async def sweep(self) -> None:
        """Fail every run whose proxy died (its lease expired): at start-up."""
        if self.log is None:
            return
        for response_id in await asyncio.to_thread(self.log.expired, time.time()):
            await self._expire(response_id)

    async def aclose(self) -> None:
        """At shutdown: stop the runs still open (the drain has given them its grace period)
        and mark them failed, before the store closes."""
        open_ids = list(self._running)
        for runner in list(self._running.values()):
            runner.generation.stop.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self.log is None:
            return
        for response_id in open_ids:
            await asyncio.to_thread(
                self.log.close, response_id, "failed", "response.failed", SERVER_STOPPED
            )


def background_log(config: ProxyConfig, store: ResponseStore | None) -> BackgroundStore | None:
    """The background tables beside the response store (none when it is off), bounded as it
    is: a response's log by the row cap, the rows by the retention limits."""
    if store is None:
        return None
    return BackgroundStore(
        store,
        max_log_bytes=config.response_max_row_bytes,
        max_age_seconds=config.response_retention_seconds,
        max_rows=config.response_retention_count,
        max_total_bytes=config.response_retention_bytes,
    )


async def _nothing(_: bool) -> None:
    """A tail owns no generation: nothing to close."""
