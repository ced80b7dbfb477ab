"""One structured (JSON) log line per generation request, on the `proxy.requests` logger.

Why: /metrics gives aggregates, but an operator chasing one slow or failed request needs its
id (the X-Request-Id the client or gateway sent), status, token counts, time to first token,
duration and finish reason, on one greppable line. Prompts, answers and reasoning are never
logged (they are user data); API keys are never logged either: `key` is the caller's name
(the key file's name for it, else key-<fingerprint>, proxy/core/caller.py), `anonymous`
without keys.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, fields

from proxy.core.caller import ANONYMOUS, Caller

logger = logging.getLogger("proxy.requests")


@dataclass
class RequestRecord:
    """What is known about one request; `emit()` writes it once."""

    id: str
    # Which API: "chat.completions", "responses" or "messages" (the path's last part).
    api: str = ""
    model: str = ""
    stream: bool = False
    status: int = 200
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    error: str | None = None
    # Who sent it (logged as `key`: its name; the owner stays out of the log).
    caller: Caller = ANONYMOUS
    started: float = field(default_factory=time.monotonic, repr=False)
    _emitted: bool = field(default=False, repr=False)

    def emit(self) -> None:
        if self._emitted:
            return
        self._emitted = True
        self.duration_ms = round((time.monotonic() - self.started) * 1000, 1)
        level = logging.WARNING if self.status >= 500 else logging.INFO
        if not logger.isEnabledFor(level):  # (e.g. --log-level warning: no line to format)
            return
        line = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _UNLOGGED}
        line["key"] = self.caller.name
        logger.log(level, json.dumps({"event": "request", **line}, ensure_ascii=True))


_UNLOGGED = frozenset({"caller", "started", "_emitted"})
