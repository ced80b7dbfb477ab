"""A stream's `GapTally`, flushed into the `TokenHistogram`, equals observing each token's gap
one by one, in the exposition text too."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from proxy.server.metrics import GapTally, TokenHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.1, 1.0)
# (gap, tokens): on a bound, under the first, past the last, zero, repeated.
OBSERVATIONS = [(0.003, 7), (0.02, 1), (0.02, 12), (0.5, 3), (4.0, 2), (0.0, 5), (0.01, 4)]


def _exposition(registry: CollectorRegistry) -> dict[str, float]:
    lines = generate_latest(registry).decode().splitlines()
    pairs = (line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))
    return {name: float(value) for name, value in pairs if "_created" not in name}


def _one_by_one() -> dict[str, float]:
    registry = CollectorRegistry()
    histogram = Histogram("gaps_seconds", "gaps", buckets=BUCKETS, registry=registry)
    for gap, n in OBSERVATIONS:
        for _ in range(n):
            histogram.observe(gap)
    return _exposition(registry)


def _tallied(flush_after: set[int]) -> tuple[dict[str, float], CollectorRegistry, GapTally]:
    registry = CollectorRegistry()
    histogram = TokenHistogram("gaps_seconds", "gaps", buckets=BUCKETS, registry=registry)
    tally = histogram.tally()
    for i, (gap, n) in enumerate(OBSERVATIONS):
        tally.add(gap, n)
        if i in flush_after:
            tally.flush()
    tally.flush()
    return _exposition(registry), registry, tally


@pytest.mark.parametrize("flush_after", [set(), {0}, {1, 3}, set(range(len(OBSERVATIONS)))])
def test_a_flushed_tally_equals_observing_each_token(flush_after: set[int]) -> None:
    ours, _, _ = _tallied(flush_after)
    theirs = _one_by_one()
    assert ours == pytest.approx(theirs)
    assert ours["gaps_seconds_count"] == 34
    assert ours['gaps_seconds_bucket{le="0.01"}'] == 16  # 0.01 itself counts under le=0.01
    assert ours['gaps_seconds_bucket{le="+Inf"}'] == 34


def test_nothing_reaches_the_histogram_before_a_flush_and_nothing_twice() -> None:
    registry = CollectorRegistry()
    histogram = TokenHistogram("gaps_seconds", "gaps", buckets=BUCKETS, registry=registry)
    tally = histogram.tally()
    tally.add(0.02, 10)
    assert _exposition(registry)["gaps_seconds_count"] == 0
    tally.flush()
    tally.flush()  # nothing new: adds nothing
    assert _exposition(registry)["gaps_seconds_count"] == 10
    assert _exposition(registry)["gaps_seconds_sum"] == pytest.approx(0.2)
