"""Fewer writes when they do not matter: a stream's ready outputs merged into one step per choice.

Past the per-token work, what a streamed token costs the server is its socket write (about 10 µs
each on loopback once the server is slower than its client), so the run writes what is ready
rather than one engine output at a time. `CompletionRun` (proxy/core/run.py) holds a choice's
steps back only while a further output of the stream is already at hand (`GenerationChunk.
more_ready`, set by a backend that holds it, or the run's own read-ahead queue), and releases
them merged here: events concatenated with adjacent pieces of one thing joined (one `Text` per
message, one `CallArguments` per call, a call's first arguments inside its `CallStart`),
logprobs concatenated. Each API renders a merged step as it renders any step, so chat writes one
chunk with the joined content and Responses one delta event per item. When nothing more is
ready, a step is released at once: at low load every output is still its own write.

Operators can set floors (`StreamInterval`): at least N tokens per choice between its writes, as
vLLM's `--stream-interval` does, and at least M ms between the stream's writes; a request may
ask for a coarser time floor, never a finer one, bounded by the server's maximum. Never held
back, whatever the floors: a choice's first output, a step that opens a tool call (its id and
name go out in the first write after the header is parsed), and a choice's finish step, which
stays its own step (the finish chunk clients expect) after the text released before it. Only
the time floor ever waits past the next output (proxy/core/chunk_reader.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from proxy.core.events import CallArguments, CallStart, Event, Step, Text

# The largest `stream_interval_ms` a request may name at all (a minute); above it: a 400.
# Values between the server's `max_ms` and this are clamped to `max_ms`.
SANE_INTERVAL_MS = 60_000.0


@dataclass(frozen=True, slots=True)
class StreamInterval:
    """The floors of one stream's writes: `tokens` per choice (1: none), `ms` between the
    stream's writes (0: none); `max_ms` bounds what a request may ask for. `merge`: merge the
    outputs that are ready together (off: one write per engine output, for comparison).
    `when_behind`: while the serving loop lags, hold text for a few of its iterations
    (proxy/core/loop_pressure.py; only with `merge`)."""

    tokens: int = 1
    ms: float = 0.0
    max_ms: float = 1000.0
    merge: bool = True
    when_behind: bool = True

    @property
    def floored(self) -> bool:
        return self.tokens > 1 or self.ms > 0

    def asked(self, ms: float | None) -> StreamInterval:
        """This interval for a request asking for `ms`: a coarser time floor than the server's,
        clamped to `max_ms`; a finer one (or None) leaves the server's."""
        if ms is None:
            return self
        wanted = min(float(ms), self.max_ms)
        if wanted <= self.ms:
            return self
        return dataclasses.replace(self, ms=wanted)


def join_events(events: list[Event]) -> list[Event]:
    """`events` with adjacent pieces of one thing joined; new objects, the inputs untouched."""
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        kind = type(event)
        if kind is Text and type(last) is Text:
            if last.kind == event.kind and last.item == event.item and last.final == event.final:
                out[-1] = Text(last.kind, last.item, last.text + event.text, last.final)
                continue
        elif kind is CallArguments:
            if type(last) is CallArguments and last.call == event.call:
                out[-1] = CallArguments(last.call, last.text + event.text)
                continue
            if type(last) is CallStart and last.call == event.call:
                out[-1] = CallStart(
                    last.call, last.item, last.id, last.name, last.arguments + event.text
                )
                continue
        out.append(event)
    return out


def urgent(steps: list[Step]) -> bool:
    """Steps that must be written at once: a choice's end, or a call's id and name."""
    for step in steps:
        if step.finish is not None:
            return True
        for event in step.events:
            if type(event) is CallStart:
                return True
    return False


class PendingSteps:
    """The steps of each choice held back since its last write, and what they are released as."""

    def __init__(self, n: int) -> None:
        self._held: list[list[Step]] = [[] for _ in range(n)]
        self._order: list[int] = []  # choices holding steps, in the order they began to
        # Engine tokens held per choice (the token floor), and whether it was ever written.
        self.tokens = [0] * n
        self.written = [False] * n

    def __bool__(self) -> bool:
        return bool(self._order)

    def hold(self, steps: list[Step], tokens: int, choice: int) -> None:
        self.tokens[choice] += tokens
        for step in steps:
            held = self._held[step.choice]
            if not held:
                self._order.append(step.choice)
            held.append(step)

    def release(self, steps: Sequence[Step] = ()) -> list[Step]:
        """Everything held plus `steps`, one merged step per choice, each finish step after
        its choice's merged text and unmerged itself."""
        out: list[Step] = []
        for step in steps:
            if step.finish is not None:
                merged = self._take(step.choice)
                if merged is not None:
                    out.append(merged)
                out.append(step)
                continue
            held = self._held[step.choice]
            if not held:
                self._order.append(step.choice)
            held.append(step)
        for choice in self._order:
            merged = self._take(choice)
            if merged is not None:
                out.append(merged)
        self._order.clear()
        return out

    def _take(self, choice: int) -> Step | None:
        held = self._held[choice]
        if not held:
            return None
        self._held[choice] = []
        self.tokens[choice] = 0
        self.written[choice] = True
        if len(held) == 1:
            return held[0]
        events: list[Event] = []
        logprobs: list | None = None
        for step in held:
            events.extend(step.events)
            if step.logprobs:
                logprobs = (logprobs or []) + step.logprobs
        return Step(choice, join_events(events), None, logprobs)
