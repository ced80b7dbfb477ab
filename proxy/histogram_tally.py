"""Observations sorted into a Prometheus histogram's buckets in plain integers, added in one go.

`Histogram.observe` scans the bucket bounds in Python and takes two locked increments (on a
shared value, or a memory-mapped file under `--workers`) for every value. Two hot paths observe
once per streamed token: a stream's inter-token gaps (`GapTally`, proxy/server/metrics.py) and
vLLM's inter-token latencies of each engine step (`StepStatLogger`, proxy/backends/vllm_stats.py).
A `BucketTally` counts values with one bisect each and adds them with one increment per bucket
touched and one for the sum; the exposition is the one observing each value gives.

It reads prometheus_client's `Histogram` internals (`_upper_bounds`, `_buckets`, `_sum`), the
ones `observe` itself uses; tests/proxy/test_vllm_stats.py and test_token_histogram.py compare
it with `observe` value by value.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Histogram


class BucketTally:
    """Values counted per bucket of `histogram`, added to it by `flush`."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._bounds = histogram._upper_bounds  # ascending, the last one +Inf
        self._counts = [0] * len(self._bounds)
        self._total = 0.0
        self._pending = False

    def add(self, value: float, n: int = 1) -> None:
        """`n` observations of `value`. A value on a bucket's bound counts in that bucket
        (Prometheus' `le`); NaN in none, as `observe` does, but in the sum."""
        if value == value:
            self._counts[bisect_left(self._bounds, value)] += n
        self._total += value * n
        self._pending = True

    def flush(self) -> None:
        """Add what was counted since the last flush to the histogram."""
        if not self._pending:
            return
        histogram = self._histogram
        histogram._raise_if_not_observable()
        histogram._sum.inc(self._total)
        for bucket, count in zip(histogram._buckets, self._counts, strict=True):
            if count:
                bucket.inc(count)
        self._counts = [0] * len(self._bounds)
        self._total = 0.0
        self._pending = False
