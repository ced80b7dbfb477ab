"""Prometheus metrics (prometheus-client), one registry per app so servers don't share state."""

from __future__ import annotations

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ProxyMetrics:
    """Counters and histograms for /metrics; `render()` gives the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "harmony_proxy_requests",
            "Chat completion requests by HTTP status and first choice's finish_reason.",
            ["status", "finish_reason"],
            registry=r,
        )
        self.ttft = Histogram(
            "harmony_proxy_time_to_first_token_seconds",
            "Request start to the first generated token.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inter_token = Histogram(
            "harmony_proxy_inter_token_seconds",
            "Time between generated tokens (engine chunk gaps divided by their tokens).",
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
            "harmony_proxy_requests_in_flight", "Chat completions being generated.", registry=r
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
            "Requests refused before generation, by reason (rate_limit, draining, too_large).",
            ["reason"],
            registry=r,
        )
        self.queued = Gauge(
            "harmony_proxy_requests_queued",
            "Requests waiting for an admission slot.",
            registry=r,
        )

    def render(self, engine_stats: bool = False) -> bytes:
        """Our metrics, then (if asked) vLLM's engine statistics from the global registry.

        vLLM's PrometheusStatLogger registers `vllm:*` metrics (requests running and waiting in
        the engine's scheduler, KV-cache usage, preemptions, ...) in prometheus_client's default
        registry; only those families are copied, so process metrics are not duplicated.
        """
        ours = generate_latest(self.registry)
        if not engine_stats:
            return ours
        return ours + generate_latest(_VllmOnly())  # type: ignore[arg-type]


class _VllmOnly:
    """A collector view of the default registry restricted to `vllm:` metric families."""

    def collect(self):  # noqa: ANN201 - prometheus_client's collector protocol
        for family in REGISTRY.collect():
            if family.name.startswith("vllm:"):
                yield family
