"""Who sent a request: the identity every tenant-scoped decision keys on.

The edge (`proxy.server.edge.ApiKeyCheck`) matches the request's API key and puts a `Caller` in
the ASGI scope's state; everything that must keep one key's data from another reads it there:
the owner of stored responses, the prefix-cache salt, the binding of sealed reasoning, the
request log and the per-key limits.

- `name` is printable and safe for logs and metric labels: the key's name from the key file,
  else `key-` and a fingerprint of the key. Never the key itself.
- `owner` is the stable, opaque id that owns state. Keys that share a name share an owner: that
  is how a key rotates (`NEWKEY alice` beside `OLDKEY alice`) without orphaning what the old key
  stored. A key without a name is its own owner.
- Without configured keys (a loopback development server) every request is `ANONYMOUS`: one
  tenant, as before.

The fingerprint is an HMAC-SHA256 of the key under a fixed label: stable across restarts and
replicas (stored rows written by one replica are found by another), and it reveals nothing
about a key of real entropy.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

__all__ = ["ANONYMOUS", "Caller", "caller_for_key", "caller_of", "key_fingerprint"]

_FINGERPRINT_LABEL = b"harmony-proxy api key fingerprint v1"


@dataclass(frozen=True, slots=True)
class Caller:
    """The identity of one request's API key."""

    name: str
    owner: str


ANONYMOUS = Caller(name="anonymous", owner="anonymous")


def key_fingerprint(key: bytes) -> str:
    """A 32-hex-digit fingerprint of `key`: an HMAC, never reversible into the key."""
    return hmac.new(_FINGERPRINT_LABEL, key, hashlib.sha256).hexdigest()[:32]


def caller_for_key(key: bytes, name: str | None = None) -> Caller:
    """The caller a key stands for: its name if it has one, else its fingerprint."""
    if name:
        return Caller(name=name, owner=f"name:{name}")
    fingerprint = key_fingerprint(key)
    return Caller(name=f"key-{fingerprint[:12]}", owner=f"key:{fingerprint}")


def caller_of(request: Any) -> Caller:
    """The caller the edge recorded for a Starlette request (or an ASGI scope)."""
    state = request.get("state") if isinstance(request, dict) else request.scope.get("state")
    caller = (state or {}).get("caller")
    return caller if isinstance(caller, Caller) else ANONYMOUS
