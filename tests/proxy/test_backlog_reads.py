"""Reading an engine that merges once per hold while the loop runs late (proxy/core/pacing.py).

An engine that merges a stream's outputs until read into one (`merges_while_unread`: vLLM's
collector, a paced script with `pace_merged`) is not read ahead under the loop's backlog: the
run writes, sleeps out the hold and reads what was made meanwhile. These drive `CompletionRun`
directly with the backlog's hold set by hand, so the timings are the run's own, not a loaded
loop's.
"""

from __future__ import annotations

import asyncio
import time

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.events import Step
from proxy.core.loop_pressure import LoopPressure
from tests.support.replay import answer_completion
from tests.support.runs import new_run

TOKENS = list(answer_completion(60))
PACE = 0.002  # seconds per token: the stream takes about 0.12 s of engine time


class _Merging(ScriptedBackend):
    """A scripted engine the run reads once per hold whatever its script."""

    @property
    def merges_while_unread(self) -> bool:
        return True


def _run(script: Script, hold: float, n: int = 1) -> tuple[list[tuple[float, Step]], float]:
    """The steps of one run with the backlog's hold fixed at `hold` (monotonic times), and
    when the run ended."""

    async def go() -> tuple[list[tuple[float, Step]], float]:
        backend = ScriptedBackend(script)
        pressure = LoopPressure()
        pressure.hold = hold
        run = new_run(backend, n=n, pressure=pressure)
        await run.start()
        steps = []
        try:
            async for step in run.steps():
                assert isinstance(step, Step)
                steps.append((time.monotonic(), step))
        finally:
            await run.close()
        return steps, time.monotonic()

    return asyncio.run(go())


def _text(steps: list[tuple[float, Step]], choice: int = 0) -> str:
    return "".join(
        getattr(event, "text", "")
        for _, step in steps
        if step.choice == choice
        for event in step.events
    )


def test_a_merging_engine_is_read_once_per_hold_with_the_same_text() -> None:
    script = Script([TOKENS], pace=PACE, pace_merged=True)
    assert ScriptedBackend(script).merges_while_unread
    plain, _ = _run(script, hold=0.0)
    held, _ = _run(script, hold=0.05)
    assert _text(held) == _text(plain) and _text(plain)
    writes = [t for t, step in held if step.events]
    assert len(writes) <= 6  # about 0.12 s of engine time in 0.05 s holds, not 60 outputs
    assert len([t for t, step in plain if step.events]) >= 20
    gaps = [b - a for a, b in zip(writes, writes[1:], strict=False)]
    assert all(gap >= 0.04 for gap in gaps[1:-1]), gaps  # one write per hold between


def test_the_end_follows_the_last_finish_without_another_hold() -> None:
    """Once every choice has finished only the end is left: no hold before reading it."""
    steps, ended = _run(Script([TOKENS], pace=PACE, pace_merged=True), hold=0.3)
    finished = [t for t, step in steps if step.finish is not None]
    assert len(finished) == 1
    assert ended - finished[0] < 0.1


def test_with_two_choices_both_finish_in_the_same_hold() -> None:
    """Outputs of several choices at hand together are read together: a write does not put a
    hold between one choice's finish and the other's."""
    steps, _ = _run(Script([TOKENS], pace=PACE, pace_merged=True, ready_together=2), 0.3, n=2)
    finished = {step.choice: t for t, step in steps if step.finish is not None}
    assert set(finished) == {0, 1}
    assert abs(finished[0] - finished[1]) < 0.1
    assert _text(steps, 0) == _text(steps, 1)


def test_text_held_when_the_hold_grows_is_written_before_an_engine_stall() -> None:
    """The hold can grow while the stream sleeps (the lag monitor recomputes it): text read
    before the new deadline is held, and written at that deadline even though the engine then
    stalls, not when the engine's next output comes.

    A token every 10 ms; holds of 0.2 s, grown to 0.6 s at 0.3 s; the engine stalls for a
    second before token 41. The reads at 0.2 s and 0.4 s take tokens 1-20 and 21-40; the
    second is held to 0.8 s (0.2 s, the last write, plus 0.6 s) and written then."""

    async def go() -> tuple[float, list[tuple[float, Step]]]:
        # Due tokens come as a burst of chunks (`more_ready`), the last before the stall not;
        # the run reads it as it reads vLLM (`merges_while_unread`).
        backend = _Merging(Script([TOKENS], pace=0.01, pauses={41: 1.0}))
        pressure = LoopPressure()
        pressure.hold = 0.2
        run = new_run(backend, pressure=pressure)
        await run.start()
        started = time.monotonic()

        async def grow() -> None:
            await asyncio.sleep(0.3)
            pressure.hold = 0.6

        grower = asyncio.ensure_future(grow())
        writes: list[tuple[float, Step]] = []
        try:
            async for step in run.steps():
                writes.append((time.monotonic() - started, step))
        finally:
            await run.close()
            await grower
        return started, writes

    _, writes = asyncio.run(go())
    assert writes[-1][0] > 1.0  # the engine did stall
    during = [(t, step) for t, step in writes if 0.5 < t < 1.0]
    assert during and len(_text(during)) > 20, [(round(t, 3), _text([(t, s)])) for t, s in writes]


def test_a_reader_started_before_the_first_output_is_taken_begins_with_it() -> None:
    """An engine that makes each output when asked is read ahead under the backlog's hold
    (proxy/core/chunk_reader.py); when the loop is already behind as the run starts, the run
    closes its first source unread and opens the reader's, which must still begin with the
    output `start()` took, and end with the engine's end (nothing left to abort)."""

    async def go() -> tuple[list[tuple[float, Step]], bool, int]:
        backend = ScriptedBackend(Script([TOKENS]))
        pressure = LoopPressure()
        pressure.hold = 0.02
        run = new_run(backend, pressure=pressure)
        await run.start()
        steps = []
        try:
            async for step in run.steps():
                steps.append((time.monotonic(), step))
        finally:
            await run.close()
        assert run.usage is not None
        return steps, run.engine_finished and not backend.aborted, run.usage.completion_tokens

    held, finished, tokens = asyncio.run(go())
    plain, _ = _run(Script([TOKENS]), hold=0.0)
    assert tokens == len(TOKENS)  # the first output (a header token alone) included
    assert _text(held) == _text(plain) and _text(plain)
    assert finished
