"""vLLM's Prometheus metrics for the in-process engine, with each engine step's inter-token
latencies added to their histogram in one pass.

vLLM's `PrometheusStatLogger.record` runs on the serving loop after every engine step and
observes `vllm:inter_token_latency_seconds` once per stream that got a token: each observation
scans the bucket bounds in Python and takes two locked increments, so the serving process pays
it for every token it streams. `StepStatLogger` hands vLLM the step's statistics without those
latencies and adds them itself (`observe_all`, proxy/histogram_tally.py: a bisect each, then one
increment per bucket touched and one for the sum). The histogram is the same; everything else
is vLLM's own code.

Measured on the CPU engine at 32 clients: without vLLM's statistics at all the proxy spends
0.92x the CPU per token (`bench_side_by_side.py --systems proxy,proxy-base`, median of 6
rotated rounds; the same tree on both sides gives 1.02x, so only effects past about 5% show
there). In a thread-time cProfile of the serving process (200 requests), the stat logger's
`record` went from 6.3% to 4.4% of the process's CPU with this class. `vllm serve` pays all of
vLLM's statistics too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Histogram
from vllm.v1.metrics.loggers import PrometheusStatLogger

from proxy.histogram_tally import BucketTally


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """Record `values` as calling `histogram.observe(v)` on each would, with one increment
    per bucket touched (`BucketTally`)."""
    tally = BucketTally(histogram)
    for value in values:
        tally.add(value)
    tally.flush()


class StepStatLogger(PrometheusStatLogger):
    """vLLM's Prometheus logger; a step's inter-token latencies go in at once."""

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        latencies: list[float] = []
        if iteration_stats is not None:
            latencies = iteration_stats.inter_token_latencies_iter
            iteration_stats.inter_token_latencies_iter = []
        try:
            super().record(scheduler_stats, iteration_stats, mm_cache_stats, engine_idx)
        finally:
            if iteration_stats is not None:  # as it was, for any logger after this one
                iteration_stats.inter_token_latencies_iter = latencies
        observe_all(self.histogram_inter_token_latency[engine_idx], latencies)
