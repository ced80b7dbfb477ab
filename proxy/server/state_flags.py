"""The `serve` flags of what the server keeps: stored responses, conversations, background
responses, and the keys sealing reasoning (a part of `ServingFlags`)."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.core.sealing import DEFAULT_TTL_SECONDS
from proxy.server.flags import GROUP_RESPONSES, duration_seconds, flag


@dataclass(frozen=True)
class StateFlags:
    """Stored state and its keys."""

    # -- responses API
    response_store: str | None = flag(
        None,
        "where stored responses live: a file path or sqlite:///path (embedded SQLite, created "
        "0600), postgresql://user@host/db for several proxy replicas, or `off` to store "
        "nothing (default: $XDG_DATA_HOME/harmony-proxy/responses.sqlite3, i.e. "
        "~/.local/share/...)",
        group=GROUP_RESPONSES,
    )
    response_retention: int = flag(
        10_000,
        "keep at most this many stored responses, oldest dropped first (default: 10000; "
        "0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    response_max_age_days: float = flag(
        30.0,
        "drop stored responses older than this (default: 30, as OpenAI; 0: never)",
        group=GROUP_RESPONSES,
        convert=float,
        minimum=0,
    )
    response_retention_bytes: int = flag(
        1024 * 1024 * 1024,
        "keep at most this many bytes of stored responses in all, oldest dropped first "
        "(default: 1 GiB; 0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    response_max_row_bytes: int = flag(
        4 * 1024 * 1024,
        "largest stored response (its answer, input and the history it continues, as JSON); "
        "a larger one is answered but not kept, and says `store: false` (default: 4 MiB; "
        "0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    # -- conversations (/v1/conversations, `conversation` in /v1/responses)
    conversation_max_bytes: int = flag(
        4 * 1024 * 1024,
        "largest conversation (its items as stored JSON); adding past it is a 400, a response "
        "may overshoot it by its own output (default: 4 MiB; 0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    conversation_max_per_key: int = flag(
        1000,
        "most conversations one API key identity keeps; creating another is a 400 until it "
        "deletes some (default: 1000; 0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    conversation_max_item_bytes: int = flag(
        1024 * 1024,
        "largest item a conversation takes (default: 1 MiB; 0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    reasoning_key: str | None = flag(
        None,
        "base64 32-byte key sealing reasoning for `include: [reasoning.encrypted_content]`; "
        "give every replica the same one (default: the key file)",
        group=GROUP_RESPONSES,
    )
    reasoning_key_file: str | None = flag(
        None,
        "file holding the reasoning key, created (mode 0600) if missing (default: "
        "reasoning.key beside a SQLite store, else in the data directory)",
        group=GROUP_RESPONSES,
    )
    # -- tenant isolation of reasoning and the prefix cache (issue 20, items 3 and 4)
    reasoning_previous_key: tuple[str, ...] = flag(
        (),
        "a previous reasoning key: opens tokens it sealed, seals nothing (repeatable; rotate "
        "by making the new key current and the old one previous for a --reasoning-ttl)",
        group=GROUP_RESPONSES,
        kind="list",
    )
    reasoning_ttl: float = flag(
        DEFAULT_TTL_SECONDS,
        "refuse sealed reasoning (encrypted_content, thinking signatures) older than this: "
        "seconds or 90s/30m/12h/7d/2w (default: 30d, the store's retention)",
        group=GROUP_RESPONSES,
        convert=duration_seconds,
        minimum=1,
    )
    require_sealed_reasoning: bool = flag(
        False,
        "refuse reasoning in input that this server did not seal: plain-text reasoning items "
        "(Responses), unsigned thinking blocks (Messages), assistant reasoning_content (chat) "
        "(default: off)",
        group=GROUP_RESPONSES,
        kind="switch",
    )
    shared_prefix_cache: bool = flag(
        False,
        "share the engine's prefix cache across API keys (single-tenant deployments); by "
        "default each key's prompts are salted apart, so no key's cache hits reveal another's "
        "prompts (default: off)",
        group=GROUP_RESPONSES,
        kind="switch",
    )
    # -- background responses (README: Background responses)
    background_max_per_key: int = flag(
        16,
        "at most this many background responses (`background: true`) queued or running at "
        "once per API key identity; more are refused with 429 (default: 16; 0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    background_max_total: int = flag(
        64,
        "at most this many background responses queued or running at once on every replica "
        "sharing the store (default: 64; 0: no limit)",
        group=GROUP_RESPONSES,
        convert=int,
        minimum=0,
    )
    background_lease: float = flag(
        30.0,
        "a background response whose replica has not renewed its lease for this long is "
        "marked failed (the replica died): seconds or 90s/5m (default: 30s)",
        group=GROUP_RESPONSES,
        convert=duration_seconds,
        minimum=1,
    )
