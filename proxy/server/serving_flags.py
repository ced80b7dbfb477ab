"""The `serve` flags of the HTTP server: binding, keys, limits, prompt defaults, streaming."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.server.flags import (
    GROUP_LIMITS,
    GROUP_PROMPT,
    GROUP_SERVER,
    LOG_LEVELS,
    flag,
    iso_date,
)
from proxy.server.hosted_flags import HostedFlags
from proxy.server.state_flags import StateFlags


@dataclass(frozen=True)
class ServingFlags(HostedFlags, StateFlags):
    """The server's own flags (a part of `Settings`; what the server keeps in state_flags.py,
    hosted tools' in hosted_flags.py)."""

    # -- server
    host: str = flag("127.0.0.1", "interface to bind (default: 127.0.0.1)", group=GROUP_SERVER)
    port: int = flag(8000, "TCP port (default: 8000)", group=GROUP_SERVER, convert=int, minimum=0)
    api_key: tuple[str, ...] = flag(
        (),
        "require `Authorization: Bearer <key>` on /v1 (repeatable; an empty key is an error); "
        "default: no auth",
        group=GROUP_SERVER,
        kind="list",
        refuse_empty=True,
    )
    # -- API keys with identities, per-key limits, fail-closed binding, the metrics key
    api_key_file: str | None = flag(
        None,
        "file of API keys, one a line: `KEY` or `KEY NAME` (the name is what logs and metrics "
        "show; keys of one name share their state); `#` comments; re-read on SIGHUP; added to "
        "--api-key (default: none)",
        group=GROUP_SERVER,
        metavar="PATH",
    )
    allow_unauthenticated: bool = flag(
        False,
        "serve a non-loopback --host without any API key (default: off, such a start is refused)",
        group=GROUP_SERVER,
        kind="switch",
    )
    metrics_key: str | None = flag(
        None,
        "require `Authorization: Bearer <key>` on /metrics (default: /metrics is open)",
        group=GROUP_SERVER,
        metavar="KEY",
        refuse_empty=True,
    )
    key_max_concurrent: int = flag(
        0,
        "/v1 requests one caller (API key name) may have open at once, else 429 with "
        "Retry-After (default: 0, no limit; per worker process)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    key_tokens_per_minute: int = flag(
        0,
        "prompt plus completion tokens one caller may spend in a sliding minute, else 429 "
        "with Retry-After (default: 0, no limit; per worker process)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    cors_origin: tuple[str, ...] = flag(
        (),
        "allow browser calls from this origin (repeatable, `*` for any); default: CORS off",
        group=GROUP_SERVER,
        kind="list",
    )
    workers: int = flag(
        1,
        "proxy processes sharing the port (default: 1); each renders, parses and streams "
        "on its own core, in front of the same replicas (--backend-url) or, without one, of "
        "one engine process this command starts (vLLM's server with the token endpoint); "
        "/metrics shows the totals over all workers",
        group=GROUP_SERVER,
        convert=int,
        minimum=1,
    )
    log_level: str = flag(
        "info",
        "log level (default: info); vLLM's and the engine libraries' start-up and shutdown "
        "messages show only with `debug`",
        group=GROUP_SERVER,
        convert=str.lower,
        choices=LOG_LEVELS,
    )
    max_connections: int = flag(
        1024,
        "open connections (idle keep-alive ones included) before uvicorn answers every new "
        "request with a plain 503 (default: 1024; keep it above --max-concurrent-requests "
        "plus --max-queued-requests, with room for health probes)",
        group=GROUP_SERVER,
        convert=int,
        minimum=1,
    )

    # -- reliability
    max_concurrent_requests: int = flag(
        256,
        "requests generating at once (default: 256; 0: no limit); more wait in the queue",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_queued_requests: int = flag(
        512,
        "requests waiting for a slot (default: 512); beyond: 429 with Retry-After",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    queue_timeout: float = flag(
        60.0,
        "seconds a request may wait for a slot before its 429 (default: 60)",
        group=GROUP_LIMITS,
        convert=float,
        minimum=0,
    )
    max_body_bytes: int = flag(
        8 * 1024 * 1024,
        "largest request body accepted, else 413 (default: 8 MiB; 0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    body_deadline: float = flag(
        30.0,
        "seconds a request's body may take to arrive after its headers, else 408 (default: "
        "30; 0: no deadline)",
        group=GROUP_LIMITS,
        convert=float,
        minimum=0,
    )
    max_messages: int = flag(
        2048,
        "most messages in one request, else 400 (default: 2048; 0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_tools: int = flag(
        128,
        "most tools (namespace members included) in one request, else 400 (default: "
        "128, OpenAI's; 0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_tool_bytes: int = flag(
        1024 * 1024,
        "most bytes of tool declarations (names, descriptions, schemas) in one request, "
        "else 400 (default: 1 MiB; 0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_schema_depth: int = flag(
        64,
        "deepest nesting of a tool's or an answer's JSON schema, else 400 (default: 64; "
        "0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_grammar_bytes: int = flag(
        256 * 1024,
        "most bytes of custom-tool grammars (Lark, regex) in one request, else 400 "
        "(default: 256 KiB; 0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_stop_strings: int = flag(
        4,
        "most stop strings in one request, else 400 (default: 4, OpenAI's)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    max_stop_length: int = flag(
        1024,
        "longest stop string, else 400 (default: 1024 characters; 0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_past_tool_calls: int = flag(
        4096,
        "most tool calls in one request's history, else 400 (default: 4096; 0: no limit)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=0,
    )
    max_n: int = flag(
        16,
        "most choices (`n`) in one request, else 400 (default: 16)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    max_metadata_pairs: int = flag(
        16,
        "most `metadata` pairs, else 400 (default: 16, OpenAI's)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    max_metadata_key_length: int = flag(
        64,
        "longest `metadata` key, else 400 (default: 64, OpenAI's)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    max_metadata_value_length: int = flag(
        512,
        "longest `metadata` value, else 400 (default: 512, OpenAI's)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    max_model_length: int = flag(
        256,
        "longest `model` name in a request, else 400 (default: 256)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    max_user_length: int = flag(
        256,
        "longest `user` in a request, else 400 (default: 256)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    plan_workers: int = flag(
        2,
        "threads planning requests at once (schema checks, renders, grammars); large "
        "checks also use one worker process (default: 2)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    send_timeout: float = flag(
        30.0,
        "drop a streaming client that accepts no data for this many seconds and abort "
        "its generation (default: 30; 0: never)",
        group=GROUP_LIMITS,
        convert=float,
        minimum=0,
    )
    drain_grace: float = flag(
        30.0,
        "on SIGTERM: seconds open requests get to finish before they are ended with an "
        "error event and [DONE] (default: 30; keep it below the pod's "
        "terminationGracePeriodSeconds)",
        group=GROUP_LIMITS,
        convert=float,
        minimum=0,
    )

    # -- prompt
    date: str | None = flag(
        None,
        "`Current date:` in the system prompt, YYYY-MM-DD (default: today, pinned at startup)",
        group=GROUP_PROMPT,
        convert=iso_date,
    )
    reasoning_effort: str = flag(
        "medium",
        "effort for requests that set none (default: medium)",
        group=GROUP_PROMPT,
        choices=("low", "medium", "high"),
    )
    default_max_tokens: int = flag(
        8192,
        "completion budget when a request sets none (default: 8192, or the rest of the "
        "context if smaller; 0: the rest of the context, as OpenAI and vLLM do)",
        group=GROUP_PROMPT,
        convert=int,
        minimum=0,
    )
    enforce_auto_tool_calls: bool = flag(
        True,
        'under tool_choice "auto", constrain calls by grammar to declared functions with '
        "schema-valid arguments (default: on; off still enforces `strict` tools and never "
        "returns an undeclared call)",
        group=GROUP_PROMPT,
        kind="switch",
    )

    # -- streaming intervals (README: Streaming intervals; proxy/core/coalesce.py)
    stream_interval: int = flag(
        1,
        "write a stream at most every N tokens per choice (vLLM's --stream-interval); a "
        "choice's first token, a tool call's name and the finish go out at once (default: 1, "
        "every output as soon as it is read; outputs already waiting are merged anyway)",
        group=GROUP_LIMITS,
        convert=int,
        minimum=1,
    )
    stream_interval_ms: float = flag(
        0.0,
        "write a stream at most every M milliseconds; text held is written when the next "
        "output is late (default: 0, off)",
        group=GROUP_LIMITS,
        convert=float,
        minimum=0,
    )
    merge_ready_outputs: bool = flag(
        True,
        "write a stream's engine outputs that are ready together as one chunk (default: on; "
        "off: one write per engine output, as before)",
        group=GROUP_LIMITS,
        kind="switch",
    )
    merge_when_behind: bool = flag(
        True,
        "while the serving loop runs late (a sustained backlog), every stream writes at most "
        "every few of its late iterations (50-100 ms) rather than per output (default: on; "
        "off, or --no-merge-ready-outputs: only outputs already waiting are merged)",
        group=GROUP_LIMITS,
        kind="switch",
    )
    warm_tools: str | None = flag(
        None,
        "JSON file of tool sets whose grammars the engine compiles before the server reports "
        "ready, so an agent's first request does not wait (README: Operating it; default: none)",
        group=GROUP_LIMITS,
        metavar="FILE",
    )
    max_stream_interval_ms: float = flag(
        1000.0,
        "the largest `stream_options.stream_interval_ms` a request may ask for; larger values "
        "are clamped to it (default: 1000)",
        group=GROUP_LIMITS,
        convert=float,
        minimum=0,
    )
