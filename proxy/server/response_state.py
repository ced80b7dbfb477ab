"""Where stored responses live and how reasoning is sealed, from the configuration.

Kept apart from the app's wiring (proxy/server/app.py): which database, which key file, and
the scratch store that tests and embedded use get when nothing is configured.
"""

from __future__ import annotations

import base64
import secrets
import tempfile
from pathlib import Path

from proxy.api.responses.store import STORE_OFF, ResponseStore, open_store
from proxy.core.sealing import ReasoningSealer
from proxy.server.settings import ProxyConfig, data_dir


def open_response_state(
    config: ProxyConfig,
) -> tuple[ResponseStore | None, ReasoningSealer, Path | None]:
    """The response store (None when it is `off`), the reasoning sealer, and a scratch
    directory to delete at exit.

    Without a configured store (tests, embedded use) responses live in a SQLite file in a
    temporary directory that lasts as long as the app, sealed with a key of the same lifetime.
    Otherwise the key comes from the configuration, else from its key file, else from
    `reasoning.key` beside a SQLite store (or in the data directory for PostgreSQL and when the
    store is off), created on first use.
    """
    limits = {
        "max_responses": config.response_retention_count,
        "max_age_seconds": config.response_retention_seconds,
        "max_total_bytes": config.response_retention_bytes,
        "max_row_bytes": config.response_max_row_bytes,
    }
    location = config.response_store
    if location == STORE_OFF:
        key, key_file = config.reasoning_key, config.reasoning_key_file
        if key is None and key_file is None:  # (the CLI gives a file: Settings.proxy_config)
            key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
        return None, _sealer(config, key, Path(key_file or data_dir() / "reasoning.key")), None
    if location is None:
        scratch = Path(tempfile.mkdtemp(prefix="harmony-proxy-"))
        store = open_store(str(scratch / "responses.sqlite3"), **limits)
        key, key_file = config.reasoning_key, config.reasoning_key_file
        if key is None and key_file is None:
            key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")
        return store, _sealer(config, key, Path(key_file or scratch)), scratch
    store = open_store(location, **limits)
    key_file = config.reasoning_key_file
    if key_file is None:
        if location.startswith(("postgresql://", "postgres://")):
            key_file = str(data_dir() / "reasoning.key")
        else:
            path = location.removeprefix("sqlite://")
            key_file = str(Path(path).expanduser().parent / "reasoning.key")
    return store, _sealer(config, config.reasoning_key, Path(key_file)), None


def _sealer(config: ProxyConfig, key: str | None, key_file: Path) -> ReasoningSealer:
    """The reasoning sealer: the key (else the key file's keys), the previous keys, the TTL
    and whether plain-text reasoning is refused."""
    return ReasoningSealer.load(
        key,
        key_file,
        previous=config.reasoning_previous_keys,
        ttl_seconds=config.reasoning_ttl_seconds,
        require_sealed=config.require_sealed_reasoning,
    )
