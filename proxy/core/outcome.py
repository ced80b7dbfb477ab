"""A generation's outcome, recorded once when it closes: metrics, the usage hook, the request log.

Kept apart from the service (proxy/core/service.py) because deciding what happened is its own
question, asked once per request whatever path it took: a refusal (its status, counted as a
rejection when it is admission's or the drain's), a client that left (499), a failure the 500
handler counts, a surface's own settled outcome (a refusal it answered as a 200 stream), or a
completed run. A response with hosted tools has several runs: its usage, the tokens charged to
its key and the logged figures are their sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from proxy.core.errors import ProxyError, ServerDraining, TooManyRequests
from proxy.core.events import Usage
from proxy.core.run import CompletionRun

if TYPE_CHECKING:
    from proxy.core.service import Generation


def record_outcome(generation: Generation, completed: bool, error: BaseException | None) -> None:
    """Count, charge and log how `generation` ended (`completed`: its response went out whole;
    `error`: what ended it early, if anything)."""
    from proxy.core.service import ClientGone  # (the service imports this module)

    metrics = generation.service.metrics
    run = generation.run
    api, key = generation.record.api, generation.record.caller.name
    _report_usage(generation)
    if generation.settled is not None:
        status, finish, code = generation.settled
        metrics.requests.labels(api, str(status), finish or "", key).inc()
        _log(generation, status, finish=None, error=code)
    elif isinstance(error, ProxyError):
        metrics.requests.labels(api, str(error.status_code), "", key).inc()
        if isinstance(error, TooManyRequests | ServerDraining):
            reason = "rate_limit" if isinstance(error, TooManyRequests) else "draining"
            metrics.rejected.labels(reason).inc()
        _log(generation, error.status_code, error=error.code or error.error_type)
    elif isinstance(error, ClientGone) or (error is None and not completed):
        if isinstance(error, ClientGone):
            metrics.client_disconnects.inc()
        metrics.requests.labels(api, "499", "client_disconnect", key).inc()
        _log(generation, 499, finish="client_disconnect")
    elif error is not None:
        _log(generation, 500, error="internal_error")  # counted by the 500 handler
    else:
        first = run.finish_reasons[0] if run is not None else None
        reason = "error" if run is not None and run.error is not None else (first or "")
        metrics.requests.labels(api, "200", reason, key).inc()
        _log(generation, 200, finish=first)


def summed_usage(runs: Iterable[CompletionRun]) -> Usage | None:
    """Several runs' usage as one; None until every run's steps are exhausted."""
    usages = [run.usage for run in runs]
    if not usages or any(usage is None for usage in usages):
        return None
    done = [u for u in usages if u is not None]
    cached = [u.cached_tokens for u in done if u.cached_tokens is not None]
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in done),
        completion_tokens=sum(u.completion_tokens for u in done),
        reasoning_tokens=sum(u.reasoning_tokens for u in done),
        cached_tokens=sum(cached) if cached else None,
    )


def _report_usage(generation: Generation) -> None:
    """The generation's tokens to the usage hook: prompt plus completion of every run, also of
    a run that did not finish (a stream abandoned mid-way is charged what it read)."""
    on_usage = generation.service.on_usage
    runs = generation.runs
    if not runs or on_usage is None:
        return
    tokens = 0
    for run in runs:
        usage = run.usage
        if usage is not None:
            tokens += usage.prompt_tokens + usage.completion_tokens
        else:
            tokens += run.tokens_so_far
    on_usage(generation.record.caller, tokens)


def _log(
    generation: Generation, status: int, *, finish: str | None = None, error: str | None = None
) -> None:
    if not generation.service.settings.request_log:
        return
    record = generation.record
    record.status = status
    record.error = error
    record.finish_reason = finish
    run = generation.run
    if run is not None:
        usage = generation.usage
        if usage is not None:
            record.prompt_tokens = usage.prompt_tokens
            record.completion_tokens = usage.completion_tokens
            record.reasoning_tokens = usage.reasoning_tokens
        else:
            record.prompt_tokens = sum(len(r.plan.prompt_token_ids) for r in generation.runs)
        if run.ttft is not None:
            record.ttft_ms = round(run.ttft * 1000, 1)
        if run.error is not None and error is None:
            record.error = run.error.code or run.error.error_type
    record.emit()
