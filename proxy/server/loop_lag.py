"""How late the event loop runs: the gauge that shows whether any request stalls the others.

A task asks to wake after a set time (see below) and measures how late it actually woke; the
lateness is work that held the loop meanwhile (a long render, a JSON Schema check, a regex on
a large text). /metrics shows the largest lateness over the last `window` seconds
(`harmony_proxy_event_loop_lag_seconds`), so a scrape every 15 s sees any stall since the one
before, and a histogram of every wake-up's lateness
(`harmony_proxy_event_loop_lateness_seconds`), whose buckets count the stalls over any span (the
hostile-input tests count those past 50 ms per attack).

Why two intervals: each timer wake-up of an otherwise waiting loop costs this 2-core VM about
180 µs of CPU (two `epoll_pwait`s and a timer exit; 12.5 ms a second idle at 50 wake-ups, 3.3
at 10), and while a loop serves engine streams it waits between engine steps, so a 20 ms timer
broke each of those waits into several: at 32 streaming clients on the demo engine, waking every
100 ms instead of every 20 ms took 0.92x the serving CPU per token (median of 8 interleaved
pairs). So the monitor wakes every `relaxed` seconds (100 ms) while the loop is on time, and
every `interval` (20 ms) from the first wake-up at least `alert` late (the backlog floor's own
threshold, proxy/core/loop_pressure.py) until `calm` wake-ups in a row are on time again: a
backlog is seen at the resolution it was tuned for, one relaxed wake-up later at most. What it
costs: a lone stall that begins during a relaxed sleep shows shorter by up to the time that sleep
had left (a 150 ms stall shows at least 50 ms; one that ends before the sleep does, not at all),
so the gauge and the histogram resolve isolated stalls to about 100 ms, where a fixed 20 ms
interval resolved them to 20 ms. Set `relaxed` equal to `interval` for the fixed interval (the
hostile-input tests do: they count stalls past 50 ms, tests/reliability/test_hostile_costs.py).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from prometheus_client import Gauge, Histogram


class LoopLagMonitor:
    """Measures the loop's lateness: the recent maximum on `gauge`, every wake-up's lateness
    in `histogram` (what a test or an alert counts: wake-ups later than 50 ms)."""

    def __init__(
        self,
        gauge: Gauge,
        histogram: Histogram | None = None,
        *,
        interval: float = 0.02,
        relaxed: float = 0.1,
        alert: float = 0.005,
        calm: int = 5,
        window: float = 15.0,
        observer: Callable[[float], None] | None = None,
    ) -> None:
        """`observer(lateness)`: told every wake-up (the streams' backlog floor,
        proxy/core/loop_pressure.py). `relaxed`, `alert`, `calm`: see the module docstring."""
        self.gauge = gauge
        self.observer = observer
        self.histogram = histogram
        self.interval = interval
        self.relaxed = max(relaxed, interval)
        self.alert = alert
        self.calm = calm
        self.window = window
        # Quick wake-ups left before the monitor relaxes again (0: relaxed).
        self._quick = 0
        # (time, lag) of recent wake-ups that were late, oldest first; the lags decrease from
        # left to right (a later, larger lag drops the smaller ones), so the first is the max.
        self._late: collections.deque[tuple[float, float]] = collections.deque()
        self._shown = -1.0  # the gauge's value: set only when it changes

    def recent_max(self) -> float:
        """The largest lateness in the last `window` seconds: O(1) but for expired entries."""
        cutoff = time.monotonic() - self.window
        late = self._late
        while late and late[0][0] < cutoff:
            late.popleft()
        return late[0][1] if late else 0.0

    def next_period(self) -> float:
        """How long the next sleep is: `interval` while quick, else `relaxed`."""
        return self.interval if self._quick else self.relaxed

    def pace(self, lag: float) -> None:
        """A wake-up `lag` late: at least `alert` makes the next `calm` sleeps quick; an
        on-time one uses up one of them."""
        if lag >= self.alert:
            self._quick = self.calm
        elif self._quick:
            self._quick -= 1

    def record(self, now: float, lag: float) -> None:
        """Keep a wake-up's lateness for `recent_max` (only lateness above a millisecond: the
        deque stays tiny on an idle loop)."""
        if lag > 0.001:
            late = self._late
            while late and late[-1][1] <= lag:
                late.pop()  # a smaller, older lag can never be the maximum again
            late.append((now, lag))

    async def run(self, after: asyncio.Future[object] | None = None) -> None:
        """Measure until cancelled, from when `after` (the engine's start-up) is done: loading
        holds the loop on purpose (imports), and is not what the gauge is for."""
        if after is not None:
            await asyncio.wait([after])
        while True:
            period = self.next_period()
            asked = time.monotonic()
            await asyncio.sleep(period)
            now = time.monotonic()
            lag = max(0.0, now - asked - period)
            self.pace(lag)
            if self.histogram is not None:
                self.histogram.observe(lag)
            if self.observer is not None:
                self.observer(lag)
            self.record(now, lag)
            shown = self.recent_max()
            if shown != self._shown:  # (a set takes the metric's lock, and in multiprocess
                self._shown = shown  # mode writes its file: 50 times a second otherwise)
                self.gauge.set(shown)
