"""The serving loop's own backlog as a write floor: when the loop lags, streams write less often.

Merging what the engine already holds (proxy/core/coalesce.py) only helps when outputs pile
up in front of a stream. When the server itself is the bottleneck (hundreds of streams from a
fast engine, or an instant one), every stream still gets one output per loop iteration and
writes it, so the loop spends most of its time on socket writes (about 10 µs each on loopback)
and falls further behind. The loop's lateness says so directly: the server's lag monitor
(proxy/server/loop_lag.py) reports each wake-up's lateness here, and while the loop runs late,
every stream holds its text for a few of those late iterations (`hold`: four times the
lateness, 50 to 100 ms) and writes it once. An engine that merges its outputs until read
(vLLM's collector) is read once per hold; others (an engine that makes each output when asked,
a replica's events) are read ahead meanwhile (proxy/core/chunk_reader.py).
A reader then sees fewer, larger writes, further apart than the loop's own lateness (about 4x),
and the server streams more tokens per CPU second, which is what brings the lateness down.
Why 50 ms at least: a shorter hold lets the loop catch up within a hold or two, leave, fall
behind again and re-enter, so the streams spend much of a sustained backlog writing per output;
at 256 instant-backend streams a 20 ms floor gave 36,900 tokens/s against 44,600 for 50 ms
(10 interleaved rounds of benchmarks/bench_ceiling.py --compare-root, 0.83x the CPU per token).
Only a server already behind pays it, on top of a wait its readers already see.

Only a sustained backlog counts: pressure starts after `sustain` wake-ups in a row each at least
`enter` seconds late (one slow request or a descheduled process is not a backlog), and ends
after `settle` wake-ups in a row less than `leave` late. A server keeping up wakes well under a
millisecond late and does not enter it, so latency at low load is unchanged; a host starved of
CPU by other processes can, which only merges writes. The same rules as for every floor hold
(coalesce.py): a choice's first output and its finish are written as soon as read (on an engine
read once per hold, that is at most `hold` after the engine made them), a tool call's id and
name in the first write after its header (at most `hold` later).
`--no-merge-when-behind` (or `--no-merge-ready-outputs`) turns it off.
"""

from __future__ import annotations


class LoopPressure:
    """`hold`: seconds a stream holds its text between writes now (0: write what comes)."""

    def __init__(
        self,
        *,
        enter: float = 0.005,
        leave: float = 0.002,
        factor: float = 4.0,
        least: float = 0.05,
        most: float = 0.1,
        sustain: int = 5,
        settle: int = 2,
    ) -> None:
        self.enter = enter
        self.leave = leave
        self.factor = factor
        self.least = least
        self.most = most
        self.sustain = sustain
        self.settle = settle
        self.hold = 0.0
        self._late = 0  # wake-ups in a row at least `enter` late
        self._on_time = 0  # wake-ups in a row less than `leave` late

    def observe(self, lateness: float) -> None:
        """One wake-up of the lag monitor, `lateness` seconds late."""
        self._late = self._late + 1 if lateness >= self.enter else 0
        self._on_time = self._on_time + 1 if lateness < self.leave else 0
        if self.hold > 0:
            behind = self._on_time < self.settle
        else:
            behind = self._late >= self.sustain
        self.hold = min(self.most, max(self.least, lateness * self.factor)) if behind else 0.0
