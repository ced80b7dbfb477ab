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
        # (time, lag) of recent wake-ups that were late, oldest first.
        self._late: collections.deque[tuple[float, float]] = collections.deque()

    def recent_max(self) -> float:
        """The largest lateness in the last `window` seconds."""
        cutoff = time.monotonic() - self.window
        while self._late and self._late[0][0] < cutoff:
            self._late.popleft()
        return max((lag for _, lag in self._late), default=0.0)

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
            # Only lateness above a millisecond is kept: the deque stays tiny on an idle loop.
            if lag > 0.001:
                while self._late and self._late[-1][1] <= lag:
                    self._late.pop()  # a smaller, older lag can never be the maximum again
                self._late.append((now, lag))
            self.gauge.set(self.recent_max())
