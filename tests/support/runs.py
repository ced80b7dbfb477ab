"""A `CompletionRun` on a scripted engine, driven directly (no server): for tests of the run's
own timing and step marks (tests/proxy/test_backlog_reads.py, tests/proxy/test_joined_writes.py)."""

from __future__ import annotations

from proxy.backends.base import EngineBackend, SamplingConfig
from proxy.core.coalesce import StreamInterval
from proxy.core.conversation import load_encoding
from proxy.core.loop_pressure import LoopPressure
from proxy.core.output_rules import OutputRules
from proxy.core.run import CompletionPlan, CompletionRun
from proxy.core.tool_names import ToolNames
from proxy.server.metrics import ProxyMetrics


def new_run(
    backend: EngineBackend, *, n: int = 1, pressure: LoopPressure | None = None
) -> CompletionRun:
    """A plain-answer run of `n` choices on `backend`, under the loop backlog `pressure` (its
    hold set by the test; None: never behind)."""
    plan = CompletionPlan(
        completion_id="chatcmpl-test",
        engine_request_id="engine-test",
        model="m",
        prompt_token_ids=[1, 2, 3],
        sampling=SamplingConfig(max_tokens=4096, n=n),
        rules=OutputRules(tool_choice="none"),
        names=ToolNames(),
    )
    return CompletionRun(
        plan,
        backend,
        load_encoding(),
        ProxyMetrics(),
        interval=StreamInterval(),
        pressure=pressure,
    )
