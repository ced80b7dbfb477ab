"""The prefix-cache salt: one key's cached prompts are never another key's cache hits.

vLLM's prefix cache reuses the KV blocks of any earlier prompt with the same leading tokens, and
reports how many prompt tokens it reused (`cached_tokens`). Shared across API keys, that count
is an oracle: a key can time or count its way to another key's prompt (system prompts, documents,
conversations) one guessed block at a time. vLLM's `cache_salt` mixes a string into the hash of
a prompt's first block, so prompts under different salts share no blocks. Each request's salt
is derived from its caller's owner (proxy/core/caller.py): requests of one owner (one key, or
the keys sharing a name) still reuse each other's prefixes; different owners never do.

The salt is an HMAC of the owner under a fixed label: stable across restarts and proxy
replicas (so a replica pool keeps its cache hits), opaque (neither the owner nor any key can be
read back from it, and it fits vLLM's rules: at most 128 characters, no `@`, `/`, `\\`).
It is not a secret from someone who knows an owner's id and can reach the engine directly: the
replicas' own key and network policy keep such callers out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from proxy.core.caller import Caller

__all__ = ["cache_salt"]

_LABEL = b"harmony-proxy prefix-cache salt v1"


def cache_salt(caller: Caller, *, shared: bool = False) -> str | None:
    """The engine's cache salt for `caller`'s requests; None with `shared` (one tenant:
    `--shared-prefix-cache`), which leaves vLLM's prefix cache shared by every request."""
    if shared:
        return None
    return _salt(caller.owner)


@functools.lru_cache(maxsize=1024)
def _salt(owner: str) -> str:
    """(Kept per owner: every request asks, and one HMAC is a few microseconds.)"""
    return hmac.new(_LABEL, owner.encode("utf-8"), hashlib.sha256).hexdigest()
