"""The loop-lag gauge's recent maximum, read in O(1), against the plain maximum it replaces."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge

from proxy.server.loop_lag import LoopLagMonitor

WINDOW = 15.0


def monitor() -> LoopLagMonitor:
    gauge = Gauge("lag", "lag", registry=CollectorRegistry())
    return LoopLagMonitor(gauge, window=WINDOW)


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
