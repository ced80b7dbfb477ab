"""The serving loop's own backlog as a write floor: when the loop lags, streams write less often.

Merging what the engine already holds (proxy/core/coalesce.py) only helps when outputs pile
up in front of a stream. When the server itself is the bottleneck (hundreds of streams from a
fast engine, or an instant one), every stream still gets one output per loop iteration and
writes it, so the loop spends most of its time on socket writes (about 10 µs each on loopback)
and falls further behind. The loop's lateness says so directly: the server's lag monitor
(proxy/server/loop_lag.py) reports each wake-up's lateness here, and while the loop runs late,
every stream holds its text for a few of those late iterations (`hold`) and writes it once,
read ahead meanwhile (proxy/core/chunk_reader.py). The time a reader waits between writes was
already spent by the backlog; what changes is how many tokens each write carries.

Only a sustained backlog counts: pressure starts after `sustain` wake-ups in a row each at least
`enter` seconds late (one slow request or a descheduled process is not a backlog), and ends at
the first wake-up less than `leave` late. An idle or keeping-up server (lateness well under a
millisecond) never enters it, so latency at low load is unchanged. Never held, as for every
floor: a choice's first output, a tool call's id and name, a finish. `--no-merge-ready-outputs`
turns this off with the rest of the merging.
"""

from __future__ import annotations


class LoopPressure:
    """`hold`: seconds a stream holds its text between writes now (0: write what comes)."""

    def __init__(
        self,
        *,
        enter: float = 0.005,
        leave: float = 0.001,
        factor: float = 4.0,
        least: float = 0.02,
        most: float = 0.1,
        sustain: int = 5,
    ) -> None:
        self.sustain = sustain
        self._late = 0  # wake-ups in a row at least `enter` late
        self.enter = enter
        self.leave = leave
        self.factor = factor
        self.least = least
        self.most = most
        self.hold = 0.0

    def observe(self, lateness: float) -> None:
        """One wake-up of the lag monitor, `lateness` seconds late."""
        self._late = self._late + 1 if lateness >= self.enter else 0
        behind = self._late >= self.sustain or (self.hold > 0 and lateness >= self.leave)
        self.hold = min(self.most, max(self.least, lateness * self.factor)) if behind else 0.0
