"""`observe_all` (proxy/backends/vllm_stats.py) records what observing each value does.

The in-process engine's `StepStatLogger` adds an engine step's inter-token latencies to vLLM's
histogram in one pass; the exposition must be the one `Histogram.observe` per value gives:
the same bucket counts (values on a bound, below the first, +Inf, NaN) and count, and the same
sum up to float rounding. The engine-level check (the histogram's count after a real request)
is in tests/reliability/test_engine_reliability.py.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

pytest.importorskip("vllm")

from proxy.backends.vllm_stats import observe_all  # noqa: E402

BOUNDS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def _histogram() -> Histogram:
    return Histogram("itl_seconds", "test", buckets=BOUNDS, registry=CollectorRegistry())


values = st.one_of(
    st.sampled_from([*BOUNDS, 0.0, -1.0, math.inf, math.nan]),
    st.floats(min_value=-1, max_value=10, allow_nan=False),
)


@given(st.lists(st.lists(values, max_size=40), max_size=4))
def test_observe_all_records_what_observing_each_value_does(steps: list[list[float]]):
    one_by_one, at_once = _histogram(), _histogram()
    for step in steps:
        for value in step:
            one_by_one.observe(value)
        observe_all(at_once, step)
    expected, got = _samples(one_by_one), _samples(at_once)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key[0].endswith("_sum"):
            assert got[key] == pytest.approx(value, nan_ok=True)
        else:
            assert got[key] == value, key
