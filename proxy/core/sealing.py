"""Stateless reasoning replay: `reasoning.encrypted_content` (issue 10, part 4).

A client that asks for `include: ["reasoning.encrypted_content"]` with `store: false` keeps no
state on the server, yet the model should keep its chain of thought across a tool loop. So each
reasoning item carries its analysis text sealed under a server key; the client replays the
opaque token and the proxy opens it to restore the analysis in the rendered conversation.

Sealing is AES-256-GCM (authenticated: a token cannot be read without the key, and any change
to it, or a token from another server's key, fails to open rather than yielding altered text).
A token is ASCII, safe in JSON and URLs:

    "hpr1." + base64url_nopad( key_id[4] || nonce[12] || ciphertext || tag[16] )

- `hpr1.` names the format version; the associated data binds that version and the purpose
  (`harmony-proxy reasoning` for the Responses API, `harmony-proxy anthropic thinking` for the
  Messages API's thinking signatures: `for_purpose`), so a token cannot be replayed as a future
  format or as some other kind of sealed value under the same key.
- `key_id` is a 4-byte fingerprint of the key (an HMAC of a fixed label, revealing nothing
  about the key): a token sealed under another key is reported as such, not as "tampered",
  which is the usual misconfiguration of replicas that do not share a key. It is also bound by
  the associated data.
- The nonce is random (96 bits): safe for about 2**32 seals under one key, far beyond what a
  proxy's key lifetime sees.

The key is 32 bytes, given base64 (standard or URL-safe alphabet, padding optional) by flag or
environment, else read from a key file, else generated and written to that file (mode 0600) so
that it survives restarts. Replicas share reasoning by sharing the key: copy the file's one line
into every replica's key flag or environment variable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_BYTES", "TOKEN_PREFIX", "ReasoningSealer", "SealError", "decode_key"]

logger = logging.getLogger("proxy")

KEY_BYTES = 32
TOKEN_PREFIX = "hpr1."
_PURPOSE = b"harmony-proxy reasoning"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_TAG_BYTES = 16
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_OTHER_VERSION = re.compile(r"hpr\d+\.")


class SealError(Exception):
    """A token that cannot be opened: malformed, another version, another key, or altered.

    The message says which, and is safe to show to the client (the endpoint answers it as a
    400 on the `encrypted_content` item); it never contains key material.
    """


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_key(text: str, *, source: str = "the reasoning key") -> bytes:
    """A 32-byte key from its base64 text (standard or URL-safe alphabet, padding optional).

    Raises ValueError naming `source` (never echoing the key) when the text is not base64 or
    not 32 bytes.
    """
    compact = "".join(text.split())
    normalised = compact.replace("+", "-").replace("/", "_").rstrip("=")
    if not normalised or not _B64URL.fullmatch(normalised) or len(normalised) % 4 == 1:
        raise ValueError(
            f"{source} is not base64: expected {KEY_BYTES} random bytes in base64, e.g. the "
            'output of `python -c "import secrets,base64;'
            'print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())"`'
        )
    key = base64.urlsafe_b64decode(normalised + "=" * (-len(normalised) % 4))
    if len(key) != KEY_BYTES:
        raise ValueError(f"{source} decodes to {len(key)} bytes; it must be {KEY_BYTES} bytes")
    return key


class ReasoningSealer:
    """Seals reasoning text into opaque tokens and opens them again, under one server key."""

    def __init__(self, key: bytes, *, purpose: bytes = _PURPOSE) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
            raise ValueError(f"the reasoning key must be {KEY_BYTES} bytes")
        self._key = bytes(key)
        self._purpose = purpose
        self._aead = AESGCM(self._key)
        self._key_id = hmac.new(self._key, b"harmony-proxy key id", hashlib.sha256).digest()[
            :_KEY_ID_BYTES
        ]

    def for_purpose(self, label: str) -> ReasoningSealer:
        """A sealer under the same key whose tokens are bound to another purpose: a token of one
        purpose (a Responses `encrypted_content`) does not open as the other (an Anthropic
        thinking `signature`), and the reverse, so neither can be passed off as the other."""
        return ReasoningSealer(self._key, purpose=f"harmony-proxy {label}".encode())

    @property
    def key_id(self) -> str:
        """The key's public fingerprint (hex), for logs: equal on replicas sharing a key."""
        return self._key_id.hex()

    @classmethod
    def load(cls, key: str | None, key_file: Path) -> ReasoningSealer:
        """The sealer for the configured key.

        `key` (from the flag or environment; None or blank means not given) wins; otherwise
        `key_file` is read; otherwise a new random key is written to `key_file` (parents made,
        mode 0600) and used. Creation is atomic: the key is written to a temporary file and
        hard-linked into place, so a concurrent reader never sees a partial key and, when two
        processes generate at once, both end up using the one that got there first.
        """
        if key is not None and key.strip():
            return cls(decode_key(key))
        key_file = Path(key_file).expanduser()
        try:
            text = key_file.read_text(encoding="ascii")
        except FileNotFoundError:
            return cls(_generate_key_file(key_file))
        except UnicodeDecodeError:
            raise ValueError(f"the reasoning key file {key_file} is not base64 text") from None
        _warn_if_exposed(key_file)
        return cls(decode_key(text, source=f"the reasoning key file {key_file}"))

    def seal(self, text: str) -> str:
        """An opaque ASCII token holding `text` (any Python string, lone surrogates included)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(
            nonce, text.encode("utf-8", "surrogatepass"), self._associated_data(self._key_id)
        )
        return TOKEN_PREFIX + _b64url(self._key_id + nonce + sealed)

    def open(self, token: str) -> str:
        """The text sealed in `token`; SealError when it is anything but a token of ours."""
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
        if len(raw) < _KEY_ID_BYTES + _NONCE_BYTES + _TAG_BYTES:
            raise SealError("encrypted content is truncated")
        key_id = raw[:_KEY_ID_BYTES]
        nonce = raw[_KEY_ID_BYTES : _KEY_ID_BYTES + _NONCE_BYTES]
        sealed = raw[_KEY_ID_BYTES + _NONCE_BYTES :]
        if not hmac.compare_digest(key_id, self._key_id):
            raise SealError(
                "encrypted content was sealed under another server key "
                "(replicas must share one reasoning key)"
            )
        try:
            plain = self._aead.decrypt(nonce, sealed, self._associated_data(key_id))
        except InvalidTag:
            raise SealError("encrypted content was altered or is corrupt") from None
        return plain.decode("utf-8", "surrogatepass")

    def _associated_data(self, key_id: bytes) -> bytes:
        return TOKEN_PREFIX.encode("ascii") + self._purpose + b"\0" + key_id


def _generate_key_file(key_file: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with mode 0600 whatever the umask.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{key_file.name}.", dir=key_file.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(_b64url(key) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, key_file)  # atomic, and fails if another process made it first
        except FileExistsError:
            text = key_file.read_text(encoding="ascii")
            return decode_key(text, source=f"the reasoning key file {key_file}")
        except OSError:
            # A filesystem without hard links: exclusive creation is still atomic, though a
            # concurrent reader could then see the file before its line is written.
            _write_exclusive(key_file, key)
    finally:
        tmp.unlink(missing_ok=True)
    logger.warning(
        "generated a new reasoning key in %s: share it with every replica (see the README)",
        key_file,
    )
    return key


def _write_exclusive(key_file: Path, key: bytes) -> None:
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(_b64url(key) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _warn_if_exposed(key_file: Path) -> None:
    try:
        mode = key_file.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        logger.warning(
            "the reasoning key file %s is readable by other users (mode %o); chmod 600 it",
            key_file,
            mode & 0o777,
        )
