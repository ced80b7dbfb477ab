"""`TokenHistogram.observe_n` is n observations of one value, in the exposition text too."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from proxy.server.metrics import TokenHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.1, 1.0)


def _samples(histogram_class: type[Histogram], observations: list[tuple[float, int]]) -> dict:
    registry = CollectorRegistry()
    histogram = histogram_class("gaps_seconds", "gaps", buckets=BUCKETS, registry=registry)
    for amount, n in observations:
        if isinstance(histogram, TokenHistogram):
            histogram.observe_n(amount, n)
        else:
            for _ in range(n):
                histogram.observe(amount)
    lines = generate_latest(registry).decode().splitlines()
    pairs = (line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))
    return {name: float(value) for name, value in pairs if "_created" not in name}


def test_observing_n_at_once_equals_n_observations() -> None:
    observations = [(0.003, 7), (0.02, 1), (0.02, 12), (0.5, 3), (4.0, 2), (0.0, 5)]
    ours, theirs = (_samples(cls, observations) for cls in (TokenHistogram, Histogram))
    assert ours == pytest.approx(theirs)
    assert ours["gaps_seconds_count"] == 30
    assert ours['gaps_seconds_bucket{le="0.025"}'] == 25
