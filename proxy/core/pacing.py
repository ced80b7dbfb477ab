"""When a run writes: which steps wait for what follows, and how the engine is read meanwhile.

`CompletionRun` (proxy/core/run.py) parses; this decides the timing of its writes, so that the
run's generation logic and the streaming interval's reading strategies can each be read alone.

A step is written as soon as nothing more is ready; outputs already at hand together are merged
into one step per choice (proxy/core/coalesce.py), and operators' floors can hold steps longer.
A time floor reads the engine ahead in one task per run (`ChunkReader`), so that held text is
written when the next output is late; while the serving loop itself lags, its backlog is such a
floor (proxy/core/loop_pressure.py). An engine that merges what it makes until read into one
output (vLLM's output collector: `EngineBackend.merges_while_unread`) is not read ahead for the
backlog: the run writes, sleeps out the hold and reads everything made meanwhile, one wake-up per
hold instead of one per output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from proxy.backends.base import GenerationChunk
from proxy.core.chunk_reader import ChunkReader
from proxy.core.coalesce import PendingSteps, StreamInterval, urgent
from proxy.core.events import Step
from proxy.core.loop_pressure import LoopPressure


class WritePacing:
    """The timing of one run's writes under its `StreamInterval` and the loop's backlog."""

    def __init__(
        self,
        interval: StreamInterval,
        pressure: LoopPressure | None,
        *,
        merges_while_unread: bool,
    ) -> None:
        """`pressure`: the serving loop's backlog, a further time floor while it lags (None or
        `interval.merge` off: never)."""
        self.interval = interval
        self._pressure = pressure
        self._merges = merges_while_unread
        self.reader: ChunkReader | None = None
        self.written_at = 0.0  # when steps were last released (the time floor's clock)

    def wrote(self) -> None:
        self.written_at = time.monotonic()

    def hold(self, gen: GenerationChunk, steps: list[Step], pending: PendingSteps) -> bool:
        """Whether `steps` wait for what follows rather than being written now."""
        if urgent(steps):
            return False
        interval = self.interval
        if interval.merge and (gen.more_ready or (self.reader is not None and self.reader.ready())):
            return True  # adaptive: the next output is at hand, write both at once
        if not pending.written[gen.index]:
            return False  # a choice's first output is never held (time to first token)
        if interval.tokens > 1 and pending.tokens[gen.index] + len(gen.token_ids) < interval.tokens:
            return True
        floor = self._time_floor()
        return floor > 0 and time.monotonic() < self.written_at + floor

    def _time_floor(self) -> float:
        """Seconds between the stream's writes now: the operator's or request's floor, or the
        loop's backlog when that is longer."""
        floor = self.interval.ms / 1000
        pressure = self._backlog()
        if pressure is not None and pressure.hold > floor:
            return pressure.hold
        return floor

    def _backlog(self) -> LoopPressure | None:
        """The loop's backlog, unless turned off (`--no-merge-when-behind`, or all merging)."""
        interval = self.interval
        return self._pressure if interval.merge and interval.when_behind else None

    async def chunks(
        self,
        source: Callable[[], AsyncIterator[GenerationChunk]],
        pending: PendingSteps,
        finished: Callable[[], bool],
    ) -> AsyncIterator[GenerationChunk | None]:
        """The engine's chunks (`source()` opens them from where the run is); read ahead by a
        `ChunkReader` once a time floor applies (from the start for a configured one, from when
        the loop falls behind for the backlog's), and then None when the floor's deadline passes
        while steps are held (they are written then, however late the engine). Under the
        backlog's floor an engine that merges while unread is not read ahead: the run sleeps
        out each hold after a write and then reads what the engine made meanwhile. `finished`:
        every choice has ended (only the engine's end is left to read: no more sleeping)."""
        chunks = source()
        pressure = self._backlog()
        if self.interval.ms > 0:
            self.reader = ChunkReader(chunks)
        ready = False  # the last chunk said the next one is at hand
        while self.reader is None:
            if pressure is not None and pressure.hold > 0 and self._merges:
                if not ready and not finished():
                    await self._sleep_out_hold(pressure.hold)
                    if pending:  # held (the hold grew meanwhile): write it before a read
                        yield None  # that can wait for the engine's next step
                        continue
            elif pressure is not None and pressure.hold > 0:
                # The reader's task must drive the engine from its first pull: the drain's
                # interrupt cancels the task that awaits the engine (proxy/core/interrupt.py),
                # and this one's is the response's. (`chunks` is paused at a yield: closing it
                # leaves the engine stream itself open.)
                await chunks.aclose()
                self.reader = ChunkReader(source())
                break
            try:
                gen = await anext(chunks)
            except StopAsyncIteration:
                return
            ready = gen.more_ready
            yield gen
        reader = self.reader
        configured = self.interval.ms / 1000
        while True:
            floor = self._time_floor()
            deadline = self.written_at + floor if pending else None
            # Under the backlog's floor, sleep to the deadline rather than wake per chunk.
            gen = await reader.next(deadline, patient=floor > configured)
            if gen is ChunkReader.END:
                return
            yield gen

    async def _sleep_out_hold(self, hold: float) -> None:
        """Wait until `hold` after the last write: the engine keeps what it makes meanwhile
        (vLLM's collector merges it), so the next read takes it all and the stream writes once
        per hold instead of waking per output. Not while the rest of a burst is at hand, nor
        once every choice has finished (the caller checks both)."""
        wait = self.written_at + hold - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def close(self) -> None:
        if self.reader is not None:
            await self.reader.close()
