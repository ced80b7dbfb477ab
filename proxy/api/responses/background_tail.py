"""Following a background response's event log: a resumed stream, on any replica.

The log is in the store, so a reader anywhere polls it: at once, then backing off while
nothing arrives (20 ms doubling to 0.5 s; a second replica's reader sees an event within that).
The replica that runs the response also wakes its own readers when it writes, so a stream on
the same replica (the POST's own `stream: true`) is not held back by the polling period.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable

from proxy.api.responses.background_run import TERMINAL_EVENTS, event_kind
from proxy.api.responses.background_store import BackgroundRow, BackgroundStore
from proxy.core.errors import TooManyRequests

_POLL_FIRST, _POLL_MAX = 0.02, 0.5
_PAGE = 256  # events read per query
# Streams one owner may follow at once on this replica (each polls the store): past it, 429.
MAX_READERS_PER_OWNER = 16


class EventTail:
    """Reads logs to their closing events. `row(id, owner)` reads a response's status row
    (failing it first if its lease expired: a reader is how a dead replica's runs end)."""

    def __init__(
        self,
        log: BackgroundStore | None,
        row: Callable[[str, str], Awaitable[BackgroundRow | None]],
    ) -> None:
        self.log = log
        self.row = row
        self._wakeups: dict[str, asyncio.Event] = {}
        self._readers: Counter[str] = Counter()  # per response id: whose wake-up stays
        self._owners: Counter[str] = Counter()  # per owner: streams followed now

    def admit(self, owner: str) -> Callable[[bool], Awaitable[None]]:
        """Take one of the owner's reader places (429 past the cap, before the response
        starts); the returned close gives it back, once, however the stream ends."""
        if self._owners[owner] >= MAX_READERS_PER_OWNER:
            raise TooManyRequests(
                f"At most {MAX_READERS_PER_OWNER} streams of background responses may be "
                "followed at once per API key; close one first.",
                retry_after=1,
            )
        self._owners[owner] += 1
        held = True

        async def release(_completed: bool) -> None:
            nonlocal held
            if held:
                held = False
                self._owners[owner] -= 1
                if self._owners[owner] <= 0:
                    del self._owners[owner]

        return release

    def notify(self, response_id: str) -> None:
        """New events (or a new status) for `response_id`: wake its readers on this replica."""
        wakeup = self._wakeups.pop(response_id, None)
        if wakeup is not None:
            wakeup.set()

    async def follow(self, response_id: str, owner: str, after: int) -> AsyncGenerator[bytes, None]:
        """The events after sequence number `after`, as they are written, to the closing event
        (past the end of a finished response: its closing event)."""
        self._readers[response_id] += 1
        try:
            async for chunk in self._follow(response_id, owner, after):
                yield chunk
        finally:
            self._readers[response_id] -= 1
            if self._readers[response_id] <= 0:  # the last reader here: its wake-up goes
                del self._readers[response_id]
                self._wakeups.pop(response_id, None)

    async def _follow(
        self, response_id: str, owner: str, after: int
    ) -> AsyncGenerator[bytes, None]:
        log = self.log
        assert log is not None
        delay = _POLL_FIRST
        while True:
            wakeup = self._wakeups.setdefault(response_id, asyncio.Event())
            rows = await asyncio.to_thread(log.events_after, response_id, after, _PAGE)
            if rows:
                after = rows[-1][0]
                yield b"".join(data for _, data in rows)
                if event_kind(rows[-1][1]) in TERMINAL_EVENTS:
                    return
                delay = _POLL_FIRST
                continue
            row = await self.row(response_id, owner)
            if row is None:
                return  # deleted meanwhile
            if not row.active:
                if after < row.events - 1:
                    continue  # it finished after the read: read the rest, to its closing event
                last = await asyncio.to_thread(log.events_after, response_id, row.events - 2, 1)
                yield b"".join(data for _, data in last)
                return
            try:
                await asyncio.wait_for(wakeup.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, _POLL_MAX)
