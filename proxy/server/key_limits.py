"""Per-caller limits: /v1 requests open at once, and tokens spent in a sliding minute.

Why: the server-wide admission limits (proxy/core/admission.py) keep the engine from being
overrun, but one key can still take every slot and starve the others. These limits are per
caller (per owner: the keys of one name share them), set by `--key-max-concurrent` and
`--key-tokens-per-minute`, and refused at the edge with a 429 and `Retry-After` in the API's
own error shape, before the body is read or parsed.

- Concurrency counts a request for its whole ASGI call: a stream holds its place until its
  last event.
- Tokens are a generation's prompt plus completion tokens, counted when it settles (the
  service's usage hook calls `CallerBudget.spend`) and kept for 60 s. A caller at or past its
  budget is refused until enough of its minute has passed (the `Retry-After`); a request let in
  under budget is not cut short, so the one that crosses it completes and the next ones wait.
  A stream the client abandons counts its prompt and the completion tokens read until then.
- Counts are per process: with `--workers N` each worker keeps its own.
- Memory is bounded: counts exist only for callers that passed the key check (configured keys,
  or the one `anonymous` caller without keys), and empty ones are dropped.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.core.caller import Caller, caller_of
from proxy.core.errors import TooManyRequests
from proxy.server.edge import send_error
from proxy.server.metrics import ProxyMetrics, api_of_path
from proxy.server.request_log import RequestRecord

WINDOW_SECONDS = 60.0


class CallerBudget:
    """Open requests and recent token spending per owner; `refusal()` says whether one more
    request may start."""

    def __init__(
        self,
        max_concurrent: int | None = None,
        tokens_per_minute: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.tokens_per_minute = tokens_per_minute
        self.clock = clock
        self._open: dict[str, int] = {}
        self._spent: dict[str, deque[tuple[float, int]]] = {}

    @property
    def active(self) -> bool:
        return bool(self.max_concurrent or self.tokens_per_minute)

    def refusal(self, owner: str) -> tuple[str, TooManyRequests] | None:
        """(reason, error) when `owner` may not start another request now, else None."""
        limit = self.max_concurrent
        if limit and self._open.get(owner, 0) >= limit:
            return "key_concurrency", TooManyRequests(
                f"Too many requests at once for this API key (its limit is {limit}); retry "
                "when one of them has finished.",
                retry_after=1,
            )
        budget = self.tokens_per_minute
        if budget:
            wait = self._wait_for_budget(owner, budget)
            if wait:
                return "key_tokens", TooManyRequests(
                    f"This API key has used its {budget} tokens per minute; retry in {wait} s.",
                    retry_after=wait,
                )
        return None

    def enter(self, owner: str) -> None:
        self._open[owner] = self._open.get(owner, 0) + 1

    def leave(self, owner: str) -> None:
        count = self._open.get(owner, 0) - 1
        if count > 0:
            self._open[owner] = count
        else:
            self._open.pop(owner, None)

    def spend(self, caller: Caller, tokens: int) -> None:
        """Record a settled generation's tokens (the generation service's usage hook)."""
        if self.tokens_per_minute and tokens > 0:
            self._spent.setdefault(caller.owner, deque()).append((self.clock(), tokens))

    def _wait_for_budget(self, owner: str, budget: int) -> int:
        """Whole seconds until `owner` is under `budget` again (0: it is now)."""
        spent = self._spent.get(owner)
        if not spent:
            return 0
        now = self.clock()
        while spent and spent[0][0] <= now - WINDOW_SECONDS:
            spent.popleft()
        if not spent:
            del self._spent[owner]
            return 0
        used = sum(tokens for _, tokens in spent)
        if used < budget:
            return 0
        # The oldest spending leaves the window first: wait until enough of it has left.
        for at, tokens in spent:
            used -= tokens
            if used < budget:
                return max(1, math.ceil(at + WINDOW_SECONDS - now))
        return 1  # (not reached: with nothing left, 0 < budget)


class KeyLimits:
    """ASGI middleware (inside `ApiKeyCheck`, which names the caller): a /v1 request over its
    caller's limits gets a 429 with `Retry-After`; the others are counted while they run."""

    def __init__(
        self, app: ASGIApp, budget: CallerBudget, metrics: ProxyMetrics, request_log: bool
    ) -> None:
        self.app = app
        self.budget = budget
        self.metrics = metrics
        self.request_log = request_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.budget.active
            or not scope["path"].startswith("/v1/")
            or scope["method"] == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        caller = caller_of(scope)
        refused = self.budget.refusal(caller.owner)
        if refused is not None:
            reason, error = refused
            self._count_refusal(scope, caller, reason)
            await send_error(send, error, scope["path"])
            return
        self.budget.enter(caller.owner)
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.leave(caller.owner)

    def _count_refusal(self, scope: Scope, caller: Caller, reason: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        api = api_of_path(scope["path"])
        if api is None:
            return
        self.metrics.requests.labels(api, "429", "", caller.name).inc()
        if self.request_log:
            request_id = (scope.get("state") or {}).get("request_id", "")
            RequestRecord(
                id=request_id, api=api, status=429, error="rate_limit_exceeded", caller=caller
            ).emit()
