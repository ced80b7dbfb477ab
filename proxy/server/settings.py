"""Server configuration: one value built by the CLI (or a test) and passed to `create_app`.

Nothing below proxy/ reads the environment; the CLI turns flags and environment variables into
a `ProxyConfig`, so tests can build servers with any configuration side by side.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from proxy.core.conversation import SystemDefaults
from proxy.core.gate import Limits
from proxy.core.service import ServiceSettings


def today() -> str:
    """Today's date (UTC) as YYYY-MM-DD, the default pinned conversation date."""
    return _dt.datetime.now(_dt.UTC).date().isoformat()


def data_dir() -> Path:
    """$XDG_DATA_HOME/harmony-proxy (~/.local/share/harmony-proxy): the default store's home."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "harmony-proxy"


@dataclass(frozen=True)
class ProxyConfig:
    """What the HTTP layer needs to know; the engine has its own options."""

    # Model ids accepted in requests; the first is the one listed by /v1/models. Empty: accept
    # whatever the backend serves (`backend.model_name`).
    served_model_names: tuple[str, ...] = ()
    # Bearer keys accepted on /v1/*. Empty: no authentication.
    api_keys: tuple[str, ...] = ()
    # Origins allowed by CORS. Empty: no CORS headers at all (browsers cannot call us cross-site).
    cors_origins: tuple[str, ...] = ()
    # `Current date:` in the system message. Pinned once (at startup by default) so prompts are
    # byte-stable: the engine's prefix cache hits and tests are reproducible.
    conversation_date: str = field(default_factory=today)
    knowledge_cutoff: str = "2024-06"
    model_identity: str = "You are ChatGPT, a large language model trained by OpenAI."
    # Used when a request has no `reasoning_effort` (the Harmony default).
    default_reasoning_effort: str = "medium"
    # Completion budget when the request sets none; None: the rest of the context window.
    default_max_tokens: int | None = None
    # Under tool_choice "auto" with tools, constrain calls by grammar: only declared functions,
    # arguments matching their schemas. Off: no grammar unless a tool is `strict` (calls are
    # then checked after generation, and undeclared or invalid ones become text).
    enforce_auto_tool_calls: bool = True
    # Mirror `reasoning` as `reasoning_content` (SGLang / llama.cpp / LiteLLM clients read it).
    mirror_reasoning_content: bool = True
    # Seconds between SSE keep-alive comments while the engine is silent (long prefill, slow
    # reasoning), so proxies and load balancers do not cut an idle stream. None: never.
    sse_ping_seconds: float | None = 15.0
    # Admission (proxy/core/admission.py): requests generating at once (None: no limit), requests
    # waiting for a slot beyond that, and how long one may wait; past either: 429.
    max_concurrent_requests: int | None = None
    max_queued_requests: int = 0
    queue_timeout_seconds: float = 30.0
    # Hostile-input limits (proxy/core/gate.py): raw body bytes (413) and messages per request.
    max_body_bytes: int | None = 8 * 1024 * 1024
    # A request's body must have arrived this many seconds after its headers (408 otherwise).
    body_deadline_seconds: float | None = 30.0
    # The cost gate's limits (proxy/core/gate.py): messages, tools, schemas, stop strings...
    limits: Limits = field(default_factory=Limits)
    # Threads planning requests (render, schema checks, grammar builds) at once.
    plan_workers: int = 2
    # A stream whose client has not accepted a write for this long is dropped (and its
    # generation aborted). None: wait for ever.
    send_timeout_seconds: float | None = 30.0
    # One JSON line per request on the `proxy.requests` logger.
    request_log: bool = True
    # Stored responses (/v1/responses `store`, `previous_response_id`): a path or sqlite:///
    # URL (embedded SQLite) or a postgresql:// URL (shared by several proxies). None: a SQLite
    # file in a temporary directory, gone when the process ends (the CLI sets a real path).
    response_store: str | None = None
    # Retention: at most this many stored responses, none older than this (None: no limit).
    response_retention_count: int | None = 10_000
    response_retention_seconds: float | None = 30 * 86400.0
    # The key sealing reasoning for stateless replay (`reasoning.encrypted_content`): base64 of
    # 32 bytes, the same on every replica. None: read (or create) `reasoning_key_file`; with
    # that None too, a key file beside the store.
    reasoning_key: str | None = None
    reasoning_key_file: str | None = None

    def service_settings(self) -> ServiceSettings:
        """What the generation service decides by."""
        return ServiceSettings(
            served_model_names=self.served_model_names,
            system=SystemDefaults(
                model_identity=self.model_identity,
                knowledge_cutoff=self.knowledge_cutoff,
                conversation_date=self.conversation_date,
                reasoning_effort=self.default_reasoning_effort,
            ),
            limits=self.limits,
            enforce_auto_tool_calls=self.enforce_auto_tool_calls,
            default_max_tokens=self.default_max_tokens,
            max_concurrent_requests=self.max_concurrent_requests,
            max_queued_requests=self.max_queued_requests,
            queue_timeout_seconds=self.queue_timeout_seconds,
            plan_workers=self.plan_workers,
            request_log=self.request_log,
        )
