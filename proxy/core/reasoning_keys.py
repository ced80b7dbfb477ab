"""The reasoning keys: their base64 text, the key file, and a new key written on first use.

A key is 32 random bytes, given base64 (standard or URL-safe alphabet, padding optional). The
key file holds one key a line: the first seals, the others are previous keys that still open
(`#` comments and blank lines ignored). Without a file, a new key is generated and written to
it (mode 0600), atomically, so that it survives restarts and concurrent starts agree on it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import tempfile
from pathlib import Path

__all__ = ["KEY_BYTES", "decode_key", "read_key_file"]

logger = logging.getLogger("proxy")

KEY_BYTES = 32
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


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


def read_key_file(key_file: Path) -> list[bytes]:
    """The keys in `key_file` (sealing key first), creating the file with a new key if it
    does not exist. Creation is atomic: the key is written to a temporary file and hard-linked
    into place, so a concurrent reader never sees a partial key and, when two processes
    generate at once, both end up using the one that got there first."""
    key_file = Path(key_file).expanduser()
    try:
        text = key_file.read_text(encoding="ascii")
    except FileNotFoundError:
        return [_generate_key_file(key_file)]
    except UnicodeDecodeError:
        raise ValueError(f"the reasoning key file {key_file} is not base64 text") from None
    _warn_if_exposed(key_file)
    source = f"the reasoning key file {key_file}"
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        decode_key("", source=source)  # raises: an empty file holds no key
    return [
        decode_key(line, source=source if i == 0 else f"{source} (key {i + 1})")
        for i, line in enumerate(lines)
    ]


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
