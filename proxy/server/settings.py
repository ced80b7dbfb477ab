"""Server configuration: `Settings` (every `serve` flag) and `ProxyConfig` (what the app needs).

Why two values: `create_app` takes a `ProxyConfig`, which tests build directly with whatever
they need; `Settings` is the whole command line, the one value the CLI hands to the serving
code, to the workers of `serve --workers N` and to the engine process (it pickles, for
multiprocessing's spawn), and `Settings.proxy_config()` derives the app's part of it.

Each `Settings` field that is a flag is declared once, with `flag(...)`, in serving_flags.py
(the HTTP server's) or engine_flags.py (the engine's and the replicas'); flags.py says how a
flag is read from the command line or its HARMONY_PROXY_<FLAG> variable. The environment
arrives as an argument: nothing below the CLI reads `os.environ`, so servers with different
settings can be built side by side (tests) and a worker sees exactly what its supervisor
parsed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.core.coalesce import StreamInterval
from proxy.core.conversation import SystemDefaults
from proxy.core.gate import Limits
from proxy.core.sealing import DEFAULT_TTL_SECONDS
from proxy.core.service import ServiceSettings
from proxy.hosted.sandbox import SandboxSettings
from proxy.server.engine_flags import EngineFlags
from proxy.server.flags import (
    Flag,
    SettingsError,
    cache_dir,
    data_dir,
    from_environment,
    parse_engine_args,
    today,
)
from proxy.server.serving_flags import ServingFlags


@dataclass(frozen=True)
class Settings(EngineFlags, ServingFlags):
    """Everything `harmony-proxy serve` was told, parsed and checked once at start-up.

    Built by `from_sources` (the CLI) or directly (tests: the defaults are the CLI's). Frozen:
    code that needs a variant (a worker is one process, not N) makes one with `replace`. Its
    flags are declared in serving_flags.py and engine_flags.py.
    """

    # -- not flags: decided from the environment when the settings are built (from_sources)
    # $XDG_DATA_HOME/harmony-proxy: the default response store and reasoning key live here.
    # None (settings built directly): responses live in a temporary directory.
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for name, spec in flags():
            value = getattr(self, name)
            if spec.minimum is not None and value is not None and value < spec.minimum:
                raise SettingsError(
                    f"{Flag.option(name)} / {Flag.variable(name)}: {value} is below "
                    f"the minimum, {spec.minimum:g}"
                )
        if any(not key.strip() for key in self.api_key):
            raise SettingsError(
                "--api-key / HARMONY_PROXY_API_KEY: an API key is empty or blank; that would "
                "accept any request. Give a real key, or none at all to serve without "
                "authentication"
            )
        if self.metrics_key is not None and not self.metrics_key.strip():
            raise SettingsError(
                "--metrics-key / HARMONY_PROXY_METRICS_KEY: the key is empty or blank; give a "
                "real key, or none to leave /metrics open"
            )
        if not (self.api_key or self.api_key_file or self.allow_unauthenticated):
            if not is_loopback(self.host):
                raise SettingsError(
                    f"--host {self.host} / HARMONY_PROXY_HOST: a non-loopback address without "
                    "an API key would let anyone who reaches it use the server; give "
                    "--api-key or --api-key-file (HARMONY_PROXY_API_KEY, "
                    "HARMONY_PROXY_API_KEY_FILE), or --allow-unauthenticated to serve without "
                    "keys on purpose"
                )
        self.engine_args()  # a malformed --engine-arg is a start-up error, not a load failure
        self.check_hosted()  # (hosted_flags.py)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_sources(cls, given: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
        """Settings from the command line's values (`given`: field name -> value, only the
        flags that were given) over the environment's, over the defaults.

        Lists add the command line's entries after the environment's (as the flags always
        did: a flag adds a key or a replica to those the deployment configured). The date is
        pinned here (today, unless given), so every worker of one server renders the same one.
        """
        values: dict[str, Any] = {}
        for name, spec in flags():
            from_env = from_environment(name, spec, environ)
            if name in given:
                value = given[name]
                if spec.kind == "list":
                    value = (*(() if from_env is dataclasses.MISSING else from_env), *value)
                values[name] = value
            elif from_env is not dataclasses.MISSING:
                values[name] = from_env
        values["date"] = values.get("date") or today()
        values.setdefault("cache", str(cache_dir(environ)))
        values["data_dir"] = str(data_dir(environ))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` (checked again)."""
        return dataclasses.replace(self, **changes)

    # -- what the parts of the server take ----------------------------------------------
    def proxy_config(self, served_model_name: str | None) -> ProxyConfig:
        """The app's configuration; `served_model_name` is decided at start-up (the demo
        model's name, or None to accept whatever the backend serves)."""
        store = self.response_store
        if store is None and self.data_dir is not None:
            store = str(Path(self.data_dir) / "responses.sqlite3")
        key_file = self.reasoning_key_file
        if key_file is None and store is not None and self.data_dir is not None:
            if store == "off" or store.startswith(("postgresql://", "postgres://")):
                # As the app would decide, but from the environment the settings were built in.
                key_file = str(Path(self.data_dir) / "reasoning.key")
        return ProxyConfig(
            served_model_names=(served_model_name,) if served_model_name else (),
            api_keys=self.api_key,
            api_key_file=self.api_key_file,
            metrics_key=self.metrics_key,
            key_max_concurrent=self.key_max_concurrent or None,
            key_tokens_per_minute=self.key_tokens_per_minute or None,
            cors_origins=self.cors_origin,
            conversation_date=self.date or today(),
            default_reasoning_effort=self.reasoning_effort,
            default_max_tokens=self.default_max_tokens or None,
            enforce_auto_tool_calls=self.enforce_auto_tool_calls,
            max_concurrent_requests=self.max_concurrent_requests or None,
            max_queued_requests=self.max_queued_requests,
            queue_timeout_seconds=self.queue_timeout,
            max_body_bytes=self.max_body_bytes or None,
            body_deadline_seconds=self.body_deadline or None,
            limits=Limits(
                max_messages=self.max_messages or None,
                max_tools=self.max_tools or None,
                max_tool_bytes=self.max_tool_bytes or None,
                max_schema_depth=self.max_schema_depth or None,
                max_grammar_bytes=self.max_grammar_bytes or None,
                max_stop_strings=self.max_stop_strings,
                max_stop_length=self.max_stop_length or None,
                max_past_tool_calls=self.max_past_tool_calls or None,
                max_n=self.max_n,
                max_metadata_pairs=self.max_metadata_pairs,
                max_metadata_key_length=self.max_metadata_key_length,
                max_metadata_value_length=self.max_metadata_value_length,
                max_model_length=self.max_model_length,
                max_user_length=self.max_user_length,
            ),
            plan_workers=self.plan_workers,
            send_timeout_seconds=self.send_timeout or None,
            background_max_per_owner=self.background_max_per_key or None,
            background_max_total=self.background_max_total or None,
            background_lease_seconds=self.background_lease,
            response_store=store,
            response_retention_count=self.response_retention or None,
            response_retention_seconds=(self.response_max_age_days * 86400.0) or None,
            response_retention_bytes=self.response_retention_bytes or None,
            response_max_row_bytes=self.response_max_row_bytes or None,
            conversation_max_bytes=self.conversation_max_bytes or None,
            conversation_max_per_key=self.conversation_max_per_key or None,
            conversation_max_item_bytes=self.conversation_max_item_bytes or None,
            reasoning_key=self.reasoning_key,
            reasoning_key_file=key_file,
            reasoning_previous_keys=self.reasoning_previous_key,
            reasoning_ttl_seconds=self.reasoning_ttl,
            require_sealed_reasoning=self.require_sealed_reasoning,
            shared_prefix_cache=self.shared_prefix_cache,
            warm_tools=self.warm_tools,
            # hosted tools (issue 18, part B)
            mcp_allow=self.mcp_allow,
            mcp_timeout_seconds=self.mcp_timeout_seconds,
            max_tool_rounds=self.max_tool_rounds,
            stream_interval=StreamInterval(
                self.stream_interval,
                self.stream_interval_ms,
                self.max_stream_interval_ms,
                self.merge_ready_outputs,
                self.merge_when_behind,
            ),
            code_interpreter=self.sandbox_settings(),
            web_search_backend=self.web_search_backend,
        )

    def engine_args(self) -> dict[str, Any]:
        """`--engine-arg` as AsyncEngineArgs keywords: `block_size=32` -> {"block_size": 32}."""
        return parse_engine_args(self.engine_arg)

    @property
    def debug(self) -> bool:
        """`--log-level debug`: show the engine libraries' own start-up and shutdown output."""
        return self.log_level == "debug"


def is_loopback(host: str) -> bool:
    """Whether binding `host` reaches this machine only: a loopback address or `localhost`.
    Any other name counts as exposed (what it resolves to is not known here)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def flags() -> list[tuple[str, Flag]]:
    """(field name, declaration) for every flag, in --help order."""
    return [
        (f.name, f.metadata["flag"]) for f in dataclasses.fields(Settings) if "flag" in f.metadata
    ]


@dataclass(frozen=True)
class ProxyConfig:
    """What the HTTP layer needs to know; the engine has its own options."""

    # Model ids accepted in requests; the first is the one listed by /v1/models. Empty: accept
    # whatever the backend serves (`backend.model_name`).
    served_model_names: tuple[str, ...] = ()
    # Bearer keys accepted on /v1/*. Empty (and no key file): no authentication.
    api_keys: tuple[str, ...] = ()
    # A file of more keys, with names (proxy/server/keys.py), re-read on SIGHUP.
    api_key_file: str | None = None
    # The bearer key /metrics requires. None: /metrics is open.
    metrics_key: str | None = None
    # Per caller (proxy/server/key_limits.py): open /v1 requests, tokens per sliding minute.
    key_max_concurrent: int | None = None
    key_tokens_per_minute: int | None = None
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
    # Seconds between the loop-lag monitor's wake-ups while the loop is on time (20 ms while it
    # runs late; proxy/server/loop_lag.py): 0.02 for the fixed 20 ms (tests counting stalls).
    loop_lag_relaxed_seconds: float = 0.1
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
    # Background responses (proxy/api/responses/background.py): at most this many running at
    # once per owner and in all (None: no limit); a runner renews its lease this often times
    # three, and a response whose lease ran out is marked failed (its proxy died).
    background_max_per_owner: int | None = 16
    background_max_total: int | None = 64
    background_lease_seconds: float = 30.0
    # Stored responses (/v1/responses `store`, `previous_response_id`): a path or sqlite:///
    # URL (embedded SQLite), a postgresql:// URL (shared by several proxies), or "off" (none
    # kept). None: a SQLite file in a temporary directory, gone when the process ends (the
    # CLI sets a real path).
    response_store: str | None = None
    # Retention: at most this many stored responses, none older than this, at most this many
    # bytes in all; a response over the row cap is not stored (None: no limit).
    response_retention_count: int | None = 10_000
    response_retention_seconds: float | None = 30 * 86400.0
    response_retention_bytes: int | None = 1024 * 1024 * 1024
    response_max_row_bytes: int | None = 4 * 1024 * 1024
    # Conversations (in the response store's database): the bytes of one conversation's items
    # and of one item (None: no limit).
    conversation_max_bytes: int | None = 4 * 1024 * 1024
    conversation_max_per_key: int | None = 1000
    conversation_max_item_bytes: int | None = 1024 * 1024
    # The key sealing reasoning for stateless replay (`reasoning.encrypted_content`): base64 of
    # 32 bytes, the same on every replica. None: read (or create) `reasoning_key_file`; with
    # that None too, a key file beside the store.
    reasoning_key: str | None = None
    reasoning_key_file: str | None = None
    # Tenant isolation (README: Tenant isolation). Previous reasoning keys open but never seal;
    # sealed reasoning older than the TTL is refused; `require_sealed_reasoning` refuses
    # reasoning in input the server did not seal. `shared_prefix_cache`: no per-owner salt.
    reasoning_previous_keys: tuple[str, ...] = ()
    reasoning_ttl_seconds: float = DEFAULT_TTL_SECONDS
    require_sealed_reasoning: bool = False
    shared_prefix_cache: bool = False
    # Floors of every stream's writes, and the bound of a request's own (proxy/core/coalesce.py).
    stream_interval: StreamInterval = field(default_factory=StreamInterval)
    # A file of tool sets compiled before the server reports ready (proxy/server/warm_tools.py).
    warm_tools: str | None = None
    # Hosted tools (proxy/hosted/; issue 18, part B): URL prefixes `mcp` tools may reach
    # (empty: `mcp` tools are refused), the time an MCP listing or call may take, and the
    # rounds of hosted calls one response may run.
    mcp_allow: tuple[str, ...] = ()
    mcp_timeout_seconds: float = 30.0
    max_tool_rounds: int = 8
    # -- gpt-oss's built-in tools (proxy/hosted/): the code interpreter's sandbox settings (None:
    # `code_interpreter` left out of the prompt) and the browser's search backend (None:
    # `web_search` left out).
    code_interpreter: SandboxSettings | None = None
    web_search_backend: str | None = None

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
            stream_interval=self.stream_interval,
            shared_prefix_cache=self.shared_prefix_cache,
        )
