"""Stateless reasoning replay: `reasoning.encrypted_content` and thinking signatures.

A client that asks for `include: ["reasoning.encrypted_content"]` with `store: false` keeps no
state on the server, yet the model should keep its chain of thought across a tool loop. So each
reasoning item carries its analysis text sealed under a server key; the client replays the
opaque token and the proxy opens it to restore the analysis in the rendered conversation.

Sealing is AES-256-GCM (authenticated: a token cannot be read without the key, and any change
to it fails to open rather than yielding altered text). A token is ASCII, safe in JSON and URLs:

    "hpr2." + base64url_nopad( key_id[4] || issued[8] || nonce[12] || ciphertext || tag[16] )

- `hpr2.` names the format version (`hpr1.` tokens, bound to nothing but the key, are refused
  as an unsupported version, like any other).
- `issued` is the sealing time (Unix seconds, big-endian). It travels in clear but is
  authenticated: a token older than the TTL cannot be made younger.
- The associated data binds the version, the purpose (`harmony-proxy reasoning` for the
  Responses API, `harmony-proxy anthropic thinking` for the Messages API: `for_purpose`), the
  key id, the issue time, the owner (the API key's `Caller.owner`) and the model the request
  named. So a token sealed for one key's conversation does not open for another key, nor for
  another model, nor as the other kind of sealed value.
- A token that is altered, expired, sealed for another owner or model, or sealed under a key
  this server does not hold is refused with one message (`REFUSED`): the refusal says nothing
  about which, so it cannot tell a prober whether a token belongs to somebody else.
- `key_id` is a 4-byte fingerprint of the key (an HMAC of a fixed label, revealing nothing
  about the key); it picks the key of the keyring that opens the token.
- The nonce is random (96 bits): safe for about 2**32 seals under one key.

The keyring: the current key seals; previous keys only open, so a key rotates without breaking
live clients (make the new key current and the old one previous for a TTL, then remove it:
its tokens are then refused). Keys are 32 bytes, given base64 (standard or URL-safe alphabet,
padding optional) by flag or environment, else read from a key file (first line the current
key, further lines previous keys), else generated and written to that file (mode 0600) so that
it survives restarts. Replicas share reasoning by sharing the keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from proxy.core.reasoning_keys import KEY_BYTES, decode_key, read_key_file

logger = logging.getLogger("proxy")

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "KEY_BYTES",
    "REFUSED",
    "TOKEN_PREFIX",
    "BoundSealer",
    "ReasoningSealer",
    "SealError",
    "decode_key",
]

TOKEN_PREFIX = "hpr2."
# 30 days: as long as the response store keeps a stored response by default, so a stateless
# client's tool loop or resumed session lives as long as a stored one.
DEFAULT_TTL_SECONDS = 30 * 86400.0
# A token issued this far in the future (a replica whose clock runs ahead) still opens.
_CLOCK_SKEW_SECONDS = 300.0
_PURPOSE = b"harmony-proxy reasoning"
_KEY_ID_BYTES = 4
_ISSUED = struct.Struct(">Q")
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEADER_BYTES = _KEY_ID_BYTES + _ISSUED.size + _NONCE_BYTES
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_OTHER_VERSION = re.compile(r"hpr\d+\.")
REFUSED = (
    "encrypted content cannot be opened here: it was altered, has expired, was issued to "
    "another API key or model, or was sealed under a key this server no longer holds"
)


class SealError(Exception):
    """A token that cannot be opened: malformed, another version, or refused (`REFUSED`).

    The message is safe to show to the client (the endpoint answers it as a 400 on the item);
    it never contains key material, and never says whose a token is.
    """


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _key_id(key: bytes) -> bytes:
    return hmac.new(key, b"harmony-proxy key id", hashlib.sha256).digest()[:_KEY_ID_BYTES]


def _field(raw: bytes) -> bytes:
    """A length-prefixed field of the associated data (so `a`+`bc` never equals `ab`+`c`)."""
    return struct.pack(">I", len(raw)) + raw


class ReasoningSealer:
    """Seals reasoning text into opaque tokens and opens them again, under a keyring.

    `key` seals; `previous` keys only open (or `keyring`: the keys of another sealer, shared). `ttl_seconds` bounds a token's age; `clock` is the
    time source (injected by tests). `require_sealed` is the server's policy that reasoning in
    a request's input must be a token of ours (plain-text reasoning is refused by the surfaces).
    """

    def __init__(
        self,
        key: bytes = b"",
        *,
        previous: Iterable[bytes] = (),
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        require_sealed: bool = False,
        clock: Callable[[], float] = time.time,
        purpose: bytes = _PURPOSE,
        keyring: _Keyring | None = None,
    ) -> None:
        if not ttl_seconds > 0:
            raise ValueError("the reasoning TTL must be positive")
        self._keyring = keyring or _Keyring([bytes(key), *(bytes(k) for k in previous)])
        self.ttl_seconds = float(ttl_seconds)
        self.require_sealed = require_sealed
        self._clock = clock
        self._purpose = purpose

    @property
    def _ring(self) -> list[tuple[bytes, AESGCM]]:
        return self._keyring.ring

    def for_purpose(self, label: str) -> ReasoningSealer:
        """A sealer under the same keyring whose tokens are bound to another purpose: a token of
        one purpose (a Responses `encrypted_content`) does not open as the other (an Anthropic
        thinking `signature`), and the reverse, so neither can be passed off as the other. The
        keyring is shared: a reload (`reload`) rekeys both."""
        return ReasoningSealer(
            ttl_seconds=self.ttl_seconds,
            require_sealed=self.require_sealed,
            clock=self._clock,
            purpose=f"harmony-proxy {label}".encode(),
            keyring=self._keyring,
        )

    def reload(self) -> bool:
        """SIGHUP: read the key file again (a rotation: a new first line seals from now on,
        the lines after it still open), keeping the previous keys given as flags. Keys given
        as `--reasoning-key` are not reloaded; on any error the current keys stay, and why is
        logged."""
        source = self._keyring.source
        if source is None:
            logger.info("SIGHUP: the reasoning key was given as a flag; not reloaded")
            return False
        key_file, older = source
        try:
            keys = read_key_file(key_file)
        except (OSError, ValueError) as exc:
            logger.error("reasoning keys not reloaded, the current ones stay: %s", exc)
            return False
        self._keyring.replace([*keys, *older])
        logger.warning(
            "reasoning keys reloaded from %s: %d key(s), sealing with %s",
            key_file,
            len(keys) + len(older),
            self.key_id,
        )
        return True

    def bound(self, owner: str, model: str) -> BoundSealer:
        """This sealer for one request: its caller's owner and the model it names."""
        return BoundSealer(self, owner, model)

    @property
    def key_id(self) -> str:
        """The sealing key's public fingerprint (hex), for logs: equal on replicas sharing it."""
        return self._ring[0][0].hex()

    @classmethod
    def load(
        cls,
        key: str | None,
        key_file: Path,
        *,
        previous: Iterable[str] = (),
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        require_sealed: bool = False,
    ) -> ReasoningSealer:
        """The sealer for the configured keys.

        `key` (from the flag or environment; None or blank means not given) wins; otherwise
        `key_file` is read (its first line the sealing key, further lines previous keys), or
        created with a new key (proxy/core/reasoning_keys.py). `previous` keys (flags) are added
        to the ring after the file's.
        """
        older = [decode_key(k, source="a previous reasoning key") for k in previous]
        source = None
        if key is not None and key.strip():
            keys = [decode_key(key)]
        else:
            keys = read_key_file(key_file)
            source = (key_file, older)
        keyring = _Keyring([*keys, *older], source)
        return cls(ttl_seconds=ttl_seconds, require_sealed=require_sealed, keyring=keyring)

    def seal(self, text: str, *, owner: str, model: str) -> str:
        """An opaque ASCII token holding `text` (any Python string, lone surrogates included),
        opening only for `owner` and `model` until the TTL has passed."""
        key_id, aead = self._ring[0]
        issued = _ISSUED.pack(int(self._clock()))
        nonce = secrets.token_bytes(_NONCE_BYTES)
        data = self._associated_data(key_id, issued, owner, model)
        sealed = aead.encrypt(nonce, text.encode("utf-8", "surrogatepass"), data)
        return TOKEN_PREFIX + _b64url(key_id + issued + nonce + sealed)

    def open(self, token: str, *, owner: str, model: str) -> str:
        """The text sealed in `token` for `owner` and `model`; SealError when it is anything
        but a live token of ours sealed for them."""
        raw = _token_bytes(token)
        key_id = raw[:_KEY_ID_BYTES]
        issued = raw[_KEY_ID_BYTES : _KEY_ID_BYTES + _ISSUED.size]
        nonce = raw[_KEY_ID_BYTES + _ISSUED.size : _HEADER_BYTES]
        data = self._associated_data(key_id, issued, owner, model)
        for ring_id, aead in self._ring:
            if not hmac.compare_digest(ring_id, key_id):
                continue
            try:
                plain = aead.decrypt(nonce, raw[_HEADER_BYTES:], data)
            except InvalidTag:
                continue  # (two keys of the ring may share a 4-byte id)
            # Authenticated now, so the issue time is the sealer's own.
            age = self._clock() - _ISSUED.unpack(issued)[0]
            if age > self.ttl_seconds or age < -_CLOCK_SKEW_SECONDS:
                break
            return plain.decode("utf-8", "surrogatepass")
        raise SealError(REFUSED)

    def _associated_data(self, key_id: bytes, issued: bytes, owner: str, model: str) -> bytes:
        text = [owner.encode("utf-8", "surrogatepass"), model.encode("utf-8", "surrogatepass")]
        return b"".join(
            [TOKEN_PREFIX.encode("ascii"), _field(self._purpose), key_id, issued]
            + [_field(part) for part in text]
        )


class _Keyring:
    """The keys a sealer and its other-purpose copies share: the first seals, all open.
    `replace` swaps the whole ring in one assignment, so a request sealing or opening while
    SIGHUP reloads sees the old ring or the new one, never a mix. `source`: the key file and
    the flags' previous keys, when the keys came from a file (what `reload` reads again)."""

    def __init__(self, keys: list[bytes], source: tuple[Path, list[bytes]] | None = None) -> None:
        self.source = source
        self.ring: list[tuple[bytes, AESGCM]] = []
        self.replace(keys)

    def replace(self, keys: list[bytes]) -> None:
        for k in keys:
            if len(k) != KEY_BYTES:
                raise ValueError(f"a reasoning key must be {KEY_BYTES} bytes")
        self.ring = [(_key_id(k), AESGCM(k)) for k in keys]


def _token_bytes(token: object) -> bytes:
    """The bytes of a token of this version, or SealError saying what is wrong with its form."""
    if not isinstance(token, str):
        raise SealError("encrypted content must be a string")
    if not token.startswith(TOKEN_PREFIX):
        if _OTHER_VERSION.match(token):
            raise SealError(
                "encrypted content has an unsupported version "
                f"({token.split('.', 1)[0]!r}; this server reads {TOKEN_PREFIX[:-1]!r})"
            )
        raise SealError("encrypted content is not reasoning sealed by this server")
    body = token[len(TOKEN_PREFIX) :]
    if not _B64URL.fullmatch(body):
        raise SealError("encrypted content is malformed (not base64url)")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise SealError("encrypted content is malformed (not base64url)") from None
    # Only the canonical encoding is accepted: base64 lets the unused low bits of the last
    # character vary, which would let a changed token open to the same text.
    if _b64url(raw) != body:
        raise SealError("encrypted content is malformed (not canonical base64url)")
    if len(raw) < _HEADER_BYTES + _TAG_BYTES:
        raise SealError("encrypted content is truncated")
    return raw


@dataclass(frozen=True, slots=True)
class BoundSealer:
    """A sealer bound to one request's owner and model: what the surfaces seal and open with."""

    sealer: ReasoningSealer
    owner: str
    model: str

    @property
    def require_sealed(self) -> bool:
        """Plain-text reasoning in the input is refused (`--require-sealed-reasoning`)."""
        return self.sealer.require_sealed

    def seal(self, text: str) -> str:
        return self.sealer.seal(text, owner=self.owner, model=self.model)

    def open(self, token: str) -> str:
        return self.sealer.open(token, owner=self.owner, model=self.model)
