"""How late the event loop runs: the gauge that shows whether any request stalls the others.

A task asks to wake every `interval` seconds and measures how late it actually woke; the
lateness is work that held the loop meanwhile (a long render, a JSON Schema check, a regex on
a large text). /metrics shows the largest lateness over the last `window` seconds
(`harmony_proxy_event_loop_lag_seconds`), so a scrape every 15 s sees any stall since the one
before, and a histogram of every wake-up's lateness
(`harmony_proxy_event_loop_lateness_seconds`), whose buckets count the stalls over any span (the
hostile-input tests count those past 50 ms per attack). Costs one timer wake-up per interval.
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
        window: float = 15.0,
        observer: Callable[[float], None] | None = None,
    ) -> None:
        """`observer(lateness)`: told every wake-up (the streams' backlog floor,
        proxy/core/loop_pressure.py)."""
        self.gauge = gauge
        self.observer = observer
        self.histogram = histogram
        self.interval = interval
        self.window = window
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
            asked = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            lag = max(0.0, now - asked - self.interval)
            if self.histogram is not None:
                self.histogram.observe(lag)
            if self.observer is not None:
                self.observer(lag)
            self.record(now, lag)
            shown = self.recent_max()
            if shown != self._shown:  # (a set takes the metric's lock, and in multiprocess
                self._shown = shown  # mode writes its file: 50 times a second otherwise)
                self.gauge.set(shown)
