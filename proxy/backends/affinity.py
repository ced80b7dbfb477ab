"""Prefix-affinity routing with bounded loads: which replica should serve this prompt?

vLLM caches KV blocks by prefix, so a request whose prompt starts like an earlier one (same
system/developer message and tools, or the same conversation one turn longer) is cheapest on the
replica that served the earlier one. The router hashes the prompt's leading blocks of
`block_tokens` tokens as a chain (each hash covers the whole prefix up to its block, as vLLM's
own block hashes do) and remembers, for each chain hash, the replica that last served it. A new
prompt goes to the replica owning its longest remembered prefix.

Affinity alone would pile a popular prefix onto one replica, so, as in consistent hashing with
bounded loads, the owner is taken only while its outstanding requests stay within
`load_factor` times the mean (plus one, so light load never forces a move); otherwise the
least-loaded replica gets the request and becomes the prefix's owner. Prompts without any
remembered prefix go to the least-loaded replica, ties broken by a rendezvous hash of their
first block, so identical system prompts converge on one replica from the start (with affinity
off, or a prompt shorter than a block, ties are broken at random).

A client's cache key (the Responses API's `prompt_cache_key`, which Codex CLI sends per session)
seeds the chain and adds a root hash of its own: requests with the same key go to the same
replica even before their prompts share a full block, and different keys never share hashes.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_BLOCK_TOKENS = 64
DEFAULT_LOAD_FACTOR = 1.25  # the c of Mirrokni et al.: each replica within 25% of the mean
# Remembered prefixes (LRU). Each is a few dozen bytes; 100k covers many conversations.
DEFAULT_CAPACITY = 100_000


@dataclass(frozen=True)
class Choice:
    """The routing decision: the replica index, and whether a cached prefix decided it."""

    replica: int
    affinity_hit: bool
    matched_tokens: int = 0


def block_hashes(
    token_ids: Sequence[int], block_tokens: int, key: str | None = None
) -> list[bytes]:
    """Chained hashes of the prompt's full blocks: hashes[i] covers tokens [0, (i+1)*block).

    With a client cache `key`, hashes[0] is the key's own and the chain starts from it.
    """
    hashes: list[bytes] = []
    previous = b""
    if key is not None:
        previous = hashlib.blake2b(b"key:" + key.encode(), digest_size=16).digest()
        hashes.append(previous)
    for start in range(0, len(token_ids) - block_tokens + 1, block_tokens):
        block = token_ids[start : start + block_tokens]
        digest = hashlib.blake2b(previous, digest_size=16)
        digest.update(b",".join(str(t).encode() for t in block))
        previous = digest.digest()
        hashes.append(previous)
    return hashes


class PrefixRouter:
    """Remembers which replica holds which prefix; picks replicas under a load bound."""

    def __init__(
        self,
        *,
        block_tokens: int = DEFAULT_BLOCK_TOKENS,
        load_factor: float = DEFAULT_LOAD_FACTOR,
        capacity: int = DEFAULT_CAPACITY,
        enabled: bool = True,
    ) -> None:
        if block_tokens < 1:
            raise ValueError("block_tokens must be at least 1")
        if load_factor < 1.0:
            raise ValueError("load_factor must be at least 1.0")
        self.block_tokens = block_tokens
        self.load_factor = load_factor
        self.capacity = capacity
        self.enabled = enabled
        self._owners: OrderedDict[bytes, int] = OrderedDict()

    def choose(
        self,
        token_ids: Sequence[int],
        loads: dict[int, int],
        exclude: set[int] | None = None,
        key: str | None = None,
    ) -> Choice | None:
        """The replica for `token_ids` among `loads` (index -> outstanding requests).

        `exclude` removes replicas already tried for this request. None when none is left.
        `key` is the client's cache key, if it sent one.
        """
        candidates = {i: n for i, n in loads.items() if not exclude or i not in exclude}
        if not candidates:
            return None
        least = min(candidates.values())
        hashes = block_hashes(token_ids, self.block_tokens, key) if self.enabled else []
        if hashes:
            bound = self._bound(candidates)
            for depth in range(len(hashes) - 1, -1, -1):
                owner = self._owners.get(hashes[depth])
                if owner is None or owner not in candidates:
                    continue
                if candidates[owner] + 1 <= max(bound, least + 1):
                    blocks = depth + (0 if key is not None else 1)
                    return Choice(owner, True, blocks * self.block_tokens)
                break  # the owner is overloaded: balance instead
        lightest = [i for i, n in candidates.items() if n == least]
        if not hashes:  # nothing to be sticky about: spread ties at random
            return Choice(random.choice(lightest), False)
        return Choice(max(lightest, key=lambda i: _rendezvous(hashes[0], i)), False)

    def _bound(self, candidates: dict[int, int]) -> int:
        total = sum(candidates.values()) + 1  # including this request
        return math.ceil(self.load_factor * total / len(candidates))

    def record(self, token_ids: Sequence[int], replica: int, key: str | None = None) -> None:
        """`replica` now holds (or is computing) this prompt's blocks."""
        if not self.enabled:
            return
        for digest in block_hashes(token_ids, self.block_tokens, key):
            self._owners[digest] = replica
            self._owners.move_to_end(digest)
        while len(self._owners) > self.capacity:
            self._owners.popitem(last=False)

    def forget(self, replica: int) -> None:
        """Drop a replica's prefixes (it restarted: its cache is empty)."""
        for digest in [d for d, r in self._owners.items() if r == replica]:
            del self._owners[digest]


def _rendezvous(seed: bytes, replica: int) -> bytes:
    return hashlib.blake2b(seed + replica.to_bytes(4, "little"), digest_size=8).digest()
