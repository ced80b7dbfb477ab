"""Prometheus metrics (prometheus-client), one registry per app so servers don't share state.

Several worker processes (`harmony-proxy serve --workers N`) share one port, so a scrape reaches
one of them at random: there the supervisor sets `PROMETHEUS_MULTIPROC_DIR` before starting the
workers, prometheus-client keeps every worker's values in files in that directory, and
`/metrics` on any worker answers the sum over all of them (in-flight and queued gauges summed
over live workers). The replica pool's per-replica figures (`harmony_proxy_replica_*`) are
copied into such metrics every second by `ReplicaMetricsMirror`, so they are totals too.

The requests counter is labelled by caller (`key`). Its values are bounded: a request reaches
it only once its key matched a configured one, so they are the configured keys' names (or
fingerprints) and `anonymous`, never something a client chose.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from proxy.histogram_tally import BucketTally

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    """Whether this process is one of several workers sharing their metrics through files."""
    return bool(os.environ.get(MULTIPROC_ENV))


# The generation routes and the `api` they are counted and logged under.
_API_OF_PATH = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}


def api_of_path(path: str) -> str | None:
    """The `api` label of a generation route's path (None: not one)."""
    return _API_OF_PATH.get(path)


class TokenHistogram(Histogram):
    """The inter-token histogram, fed by streams' `GapTally`s rather than one `observe` per
    token: a merged output's tokens share one gap, and observing them one by one cost a bucket
    search and two locked increments per token on the streaming path."""

    def tally(self) -> GapTally:
        """A tally for one stream's gaps, added here when flushed."""
        return GapTally(self)


class GapTally(BucketTally):
    """One stream's inter-token gaps, counted in plain integers and added to the histogram in
    one go (`flush`: at the stream's end, and about once a second while it runs).

    Observing into the histogram takes two locked increments per engine output (on a shared
    value, or a memory-mapped file under `--workers`); a stream tallies its outputs for one
    flush a second, so /metrics lags a live stream by about a second."""

    FLUSH_SECONDS = 1.0

    def __init__(self, histogram: TokenHistogram) -> None:
        super().__init__(histogram)
        self.flushed_at = time.monotonic()

    def flush(self, now: float | None = None) -> None:
        """Add what was tallied to the histogram (`now`: the caller's monotonic clock)."""
        self.flushed_at = time.monotonic() if now is None else now
        super().flush()


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ProxyMetrics:
    """Counters and histograms for /metrics; `render()` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "harmony_proxy_requests",
            "Generation requests (chat completions, Responses, Messages) by API, HTTP status, "
            "first choice's finish_reason and caller (`key`: the API key's name from the key "
            "file, else key-<fingerprint>; `anonymous` without keys).",
            ["api", "status", "finish_reason", "key"],
            registry=r,
        )
        self.ttft = Histogram(
            "harmony_proxy_time_to_first_token_seconds",
            "Request start to the first generated token.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inter_token = TokenHistogram(
            "harmony_proxy_inter_token_seconds",
            "Time between generated tokens (the gaps between the engine outputs the proxy "
            "reads, divided by their tokens; while the loop runs late, outputs are read in "
            "batches, so this shows the proxy's batching).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "harmony_proxy_prompt_tokens", "Prompt tokens processed.", registry=r
        )
        self.completion_tokens = Counter(
            "harmony_proxy_completion_tokens", "Tokens generated (all channels).", registry=r
        )
        self.reasoning_tokens = Counter(
            "harmony_proxy_reasoning_tokens",
            "Generated tokens on the analysis channel.",
            registry=r,
        )
        self.in_flight = Gauge(
            "harmony_proxy_requests_in_flight",
            "Generation requests (both APIs) admitted and not yet finished.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.parse_recoveries = Counter(
            "harmony_proxy_parse_recoveries",
            "Malformed model output the Harmony parser recovered from.",
            registry=r,
        )
        self.tool_call_recoveries = Counter(
            "harmony_proxy_tool_call_recoveries",
            "Tool calls turned into text instead of `tool_calls`: `undeclared` (a function or "
            "built-in tool the request did not declare) or `invalid_arguments` (not a JSON "
            "object; only possible where no grammar enforces calls).",
            ["reason"],
            registry=r,
        )
        self.client_disconnects = Counter(
            "harmony_proxy_client_disconnects",
            "Clients that went away before their completion finished (generation aborted).",
            registry=r,
        )
        self.engine_errors = Counter(
            "harmony_proxy_engine_errors", "Engine failures while generating.", registry=r
        )
        self.internal_errors = Counter(
            "harmony_proxy_internal_errors",
            "Unexpected exceptions in the server itself (logged with a traceback).",
            registry=r,
        )
        self.rejected = Counter(
            "harmony_proxy_rejected_requests",
            "Requests refused before generation, by reason (rate_limit, draining, too_large; "
            "key_concurrency and key_tokens: a caller's own limits).",
            ["reason"],
            registry=r,
        )
        self.loop_lag = Gauge(
            "harmony_proxy_event_loop_lag_seconds",
            "The event loop's largest lateness over the last 15 s: how long some work held it "
            "while other requests waited (proxy/server/loop_lag.py).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.loop_lateness = Histogram(
            "harmony_proxy_event_loop_lateness_seconds",
            "How late each of the loop monitor's wake-ups (every 20 ms) came.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.queued = Gauge(
            "harmony_proxy_requests_queued",
            "Requests waiting for an admission slot.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # Collectors computed at scrape time (the replica pool's); with several workers they
        # are mirrored into multiprocess metrics instead (`ReplicaMetricsMirror`).
        self.live = CollectorRegistry()
        self.mirror: ReplicaMetricsMirror | None = None

    def add_collector(self, collector: Any) -> None:
        """Register a scrape-time collector (one with `collect()`), e.g. the replica pool."""
        if multiprocess_mode():
            self.mirror = ReplicaMetricsMirror(collector, self.registry)
        else:
            self.live.register(collector)

    def render(self, engine_stats: bool = False) -> bytes:
        """Our metrics, then (if asked) vLLM's engine statistics from the global registry.

        vLLM's PrometheusStatLogger registers `vllm:*` metrics (requests running and waiting in
        the engine's scheduler, KV-cache usage, preemptions, ...) in prometheus_client's default
        registry; only those families are copied, so process metrics are not duplicated.
        """
        if multiprocess_mode():
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            ours = generate_latest(merged)
        else:
            ours = generate_latest(self.registry) + generate_latest(self.live)
        if not engine_stats:
            return ours
        return ours + generate_latest(_VllmOnly())  # type: ignore[arg-type]


class _VllmOnly:
    """A collector view of the default registry restricted to `vllm:` metric families."""

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        for family in REGISTRY.collect():
            if family.name.startswith("vllm:"):
                yield family


class ReplicaMetricsMirror:
    """A scrape-time collector's counters and gauges copied into multiprocess-mode metrics.

    `sync()` (every second, from the app) adds each counter's growth since the last sync to a
    real Counter and sets each gauge (summed over live workers, `healthy` as the maximum), so
    every worker's /metrics shows the totals over all workers.
    """

    def __init__(self, collector: Any, registry: CollectorRegistry) -> None:
        self.collector = collector
        self.registry = registry
        self._metrics: dict[str, Counter | Gauge] = {}
        self._seen: dict[tuple[str, tuple[str, ...]], float] = {}

    def _metric(self, family: Any) -> Counter | Gauge:
        metric = self._metrics.get(family.name)
        if metric is None:
            labels = list(family.samples[0].labels) if family.samples else []
            if family.type == "counter":
                metric = Counter(family.name, family.documentation, labels, registry=self.registry)
            else:
                mode = "livemax" if family.name.endswith("_healthy") else "livesum"
                metric = Gauge(
                    family.name,
                    family.documentation,
                    labels,
                    registry=self.registry,
                    multiprocess_mode=mode,
                )
            self._metrics[family.name] = metric
        return metric

    def sync(self) -> None:
        families: Iterable[Any] = self.collector.collect()
        for family in families:
            if not family.samples:
                continue
            metric = self._metric(family)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                values = tuple(sample.labels.values())
                child = metric.labels(*values) if values else metric
                if isinstance(metric, Counter):
                    key = (family.name, values)
                    grown = sample.value - self._seen.get(key, 0.0)
                    self._seen[key] = sample.value
                    if grown > 0:
                        child.inc(grown)  # type: ignore[union-attr]
                else:
                    child.set(sample.value)  # type: ignore[union-attr]
