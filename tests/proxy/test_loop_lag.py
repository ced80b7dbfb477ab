"""The loop-lag gauge's recent maximum, read in O(1), against the plain maximum it replaces."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge

from proxy.server.loop_lag import LoopLagMonitor

WINDOW = 15.0


def monitor(**options: Any) -> LoopLagMonitor:
    gauge = Gauge("lag", "lag", registry=CollectorRegistry())
    return LoopLagMonitor(gauge, **{"window": WINDOW, **options})


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=10.0),  # seconds since the previous wake-up
            st.floats(min_value=0.0, max_value=2.0),  # its lateness
        ),
        max_size=60,
    )
)
def test_recent_max_is_the_largest_lateness_above_a_millisecond_in_the_window(wakeups):
    lags = monitor()
    now = 1000.0
    seen: list[tuple[float, float]] = []
    for gap, lag in wakeups:
        now += gap
        lags.record(now, lag)
        seen.append((now, lag))
        expected = max((x for t, x in seen if t >= now - WINDOW and x > 0.001), default=0.0)
        with mock.patch("proxy.server.loop_lag.time.monotonic", return_value=now):
            assert lags.recent_max() == expected


def test_an_old_maximum_expires_and_the_next_largest_shows():
    lags = monitor()
    lags.record(0.0, 0.5)
    lags.record(10.0, 0.2)
    lags.record(12.0, 0.1)
    with mock.patch("proxy.server.loop_lag.time.monotonic", return_value=14.0):
        assert lags.recent_max() == 0.5
    with mock.patch("proxy.server.loop_lag.time.monotonic", return_value=16.0):
        assert lags.recent_max() == 0.2
    with mock.patch("proxy.server.loop_lag.time.monotonic", return_value=26.0):
        assert lags.recent_max() == 0.1
    with mock.patch("proxy.server.loop_lag.time.monotonic", return_value=28.0):
        assert lags.recent_max() == 0.0


# -- two intervals: relaxed while on time, quick from the first late wake-up -----------------


def test_the_monitor_sleeps_relaxed_until_a_wake_up_is_late_then_quick_until_calm():
    lags = monitor(interval=0.02, relaxed=0.1, alert=0.005, calm=3)
    assert lags.next_period() == 0.1
    lags.pace(0.004)  # late, but under `alert`: still relaxed
    assert lags.next_period() == 0.1
    lags.pace(0.005)
    periods = []
    for lag in (0.0, 0.0, 0.03, 0.0, 0.0, 0.0, 0.0):
        periods.append(lags.next_period())
        lags.pace(lag)
    # quick for `calm` on-time wake-ups after the last late one (which restarted the count)
    assert periods == [0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.1]
    assert lags.next_period() == 0.1


def test_relaxed_equal_to_interval_is_the_fixed_interval():
    lags = monitor(interval=0.02, relaxed=0.02)
    for lag in (0.0, 0.5, 0.0):
        assert lags.next_period() == 0.02
        lags.pace(lag)


def test_an_idle_loop_wakes_the_monitor_at_the_relaxed_interval_and_a_late_one_quickly():
    """On a real loop: about 5 wake-ups in half a second while nothing runs (25 at a fixed
    20 ms: the CPU the relaxed interval saves), and quick ones once the loop is held."""
    wakeups: list[float] = []

    async def scenario() -> tuple[int, int]:
        # `alert` at 40 ms: a busy test machine's scheduling jitter does not turn the idle
        # phase quick, and the 150 ms hold below still does.
        lags = monitor(interval=0.02, relaxed=0.1, alert=0.04, calm=1000, observer=wakeups.append)
        task = asyncio.create_task(lags.run())
        await asyncio.sleep(0.55)
        idle = len(wakeups)
        time.sleep(0.15)  # hold the loop past a relaxed wake-up: it comes late
        await asyncio.sleep(0)
        await asyncio.sleep(0.5)
        task.cancel()
        return idle, len(wakeups) - idle

    idle, after = asyncio.run(scenario())
    assert 3 <= idle <= 7
    assert max(wakeups) >= 0.05  # the held loop shows: a 150 ms hold, at most 100 ms of sleep
    assert after >= 15  # quick from then on (25 in half a second at 20 ms)
