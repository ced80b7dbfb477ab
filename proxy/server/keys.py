"""The API keys the edge accepts, each with the identity it stands for, swapped whole on SIGHUP.

Keys come from `--api-key` (each its own caller, named by its fingerprint) and from
`--api-key-file`, one key a line:

    # comments and blank lines are ignored
    sk-4f9c...            (a key alone: named key-<fingerprint>)
    sk-77ab...  alice     (a key and its name: logs and metrics say `alice`)
    sk-91d0...  alice     (a second key of the same name: the same owner, for rotation)

A key cannot contain whitespace nor start with `#`; a name is 1-64 letters, digits or
`._@-` (it becomes a metric label and a log field). A field starting with `#` begins a
comment, to the end of the line. Errors name the line, never its text: a key must not reach a log, and a line written
the wrong way round puts the key in the name's place.

Why a holder: `ApiKeyCheck` reads `ApiKeys.current` once per request, and `reload()` (on SIGHUP)
replaces it with one assignment, so a request sees the old set or the new one, never a mix. A
file that does not load on reload leaves the old keys in place (logged); at start-up it is an
error (the CLI exits 2). A key file holding no key is an error too: it would serve without
authentication.

The file's mode: anyone who can write it can add a key, so a file writable by others is
refused; one readable by group or others gets a warning (container secrets are often mounted
0644 for a process that is alone in its container; set the mount's mode to 0400 where you can).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from proxy.core.caller import Caller, caller_for_key
from proxy.server.flags import SettingsError

logger = logging.getLogger("proxy")

_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class KeyFileError(SettingsError):
    """A key file that cannot be served; the message names the file and line, never a key."""


@dataclass(frozen=True)
class KeyEntry:
    key: bytes
    name: str | None
    line: int  # 0: from a flag


def read_key_file(path: str | Path) -> list[KeyEntry]:
    """The keys of `path`, in order; `KeyFileError` for an unreadable or malformed file."""
    where = f"--api-key-file {path}"
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KeyFileError(f"{where}: cannot read it ({reason})") from None
    if mode & stat.S_IWOTH:
        raise KeyFileError(
            f"{where}: the file is writable by other users (anyone could add a key); "
            "chmod o-w (0600 is best)"
        )
    entries: list[KeyEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        comment = next((i for i, f in enumerate(fields) if f.startswith("#")), len(fields))
        fields = fields[:comment]
        if not fields:
            continue
        if len(fields) > 2:
            raise KeyFileError(
                f"{where}, line {number}: expected KEY or KEY NAME, found {len(fields)} fields "
                "(a trailing comment must start with #)"
            )
        name = fields[1] if len(fields) > 1 else None
        if name is not None and not _NAME.fullmatch(name):
            raise KeyFileError(
                f"{where}, line {number}: the name (second field) must be 1-64 letters, "
                "digits or ._@- (a metric label and a log field)"
            )
        entries.append(KeyEntry(fields[0].encode(), name, number))
    if not entries:
        raise KeyFileError(
            f"{where}: the file holds no key; that would serve without authentication"
        )
    return entries


def key_file_warning(path: str | Path) -> str | None:
    """Why the key file's mode is worth a warning (readable beyond its owner), or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP):
        return (
            f"--api-key-file {path} is readable or writable by other users (mode "
            f"{stat.S_IMODE(mode):04o}); chmod 0600 it (or mount the secret with mode 0400)"
        )
    return None


def key_set(flag_keys: tuple[str, ...], file_entries: list[KeyEntry]) -> Mapping[bytes, Caller]:
    """Callers by the SHA-256 of their key. A key listed twice with two names is an error; a
    flag's key that the file names takes the file's name."""
    named: dict[bytes, tuple[bytes, str | None, int]] = {}
    for entry in [*(KeyEntry(k.encode(), None, 0) for k in flag_keys), *file_entries]:
        digest = hashlib.sha256(entry.key).digest()
        seen = named.get(digest)
        if seen is not None and seen[1] and entry.name and seen[1] != entry.name:
            raise KeyFileError(
                f"--api-key-file, line {entry.line}: this key is already listed (line "
                f"{seen[2]}) under another name"
            )
        if seen is None or entry.name:
            named[digest] = (entry.key, entry.name, entry.line)
    return MappingProxyType(
        {digest: caller_for_key(key, name) for digest, (key, name, _) in named.items()}
    )


class ApiKeys:
    """The current key set: `match(key)` at the edge, `reload()` on SIGHUP."""

    def __init__(self, flag_keys: tuple[str, ...] = (), path: str | None = None) -> None:
        self.flag_keys = flag_keys
        self.path = path
        self.current = key_set(flag_keys, read_key_file(path) if path else [])
        self._warn_about_mode()

    @property
    def required(self) -> bool:
        """Whether requests need a key (any is configured)."""
        return bool(self.current)

    def match(self, given: bytes) -> Caller | None:
        """The caller of `given`, or None. Looked up by the key's SHA-256: the time taken
        depends on the digest, which tells an attacker nothing about the keys."""
        return self.current.get(hashlib.sha256(given).digest())

    def reload(self) -> bool:
        """Read the key file again; on any error keep the current keys and log why."""
        if self.path is None:
            logger.info("SIGHUP: no --api-key-file to reload")
            return False
        try:
            fresh = key_set(self.flag_keys, read_key_file(self.path))
        except KeyFileError as exc:
            logger.error("API keys not reloaded, the previous %d stay: %s", len(self.current), exc)
            return False
        self.current = fresh
        self._warn_about_mode()
        logger.warning("API keys reloaded from %s: %d key(s)", self.path, len(fresh))
        return True

    def _warn_about_mode(self) -> None:
        warning = key_file_warning(self.path) if self.path else None
        if warning:
            logger.warning("%s", warning)
