"""Sealed reasoning for stateless replay (issue 10, part 4): round trips, and every way a token
can be wrong ending in SealError (the endpoint's 400), never in wrong text or a crash. What a
token is bound to (owner, model, age) and the keyring: test_sealing_binding.py."""

from __future__ import annotations

import base64
import logging
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.sealing import (
    KEY_BYTES,
    TOKEN_PREFIX,
    BoundSealer,
    ReasoningSealer,
    SealError,
    decode_key,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def bound(key: bytes = KEY) -> BoundSealer:
    """A sealer as a request uses it: bound to its caller's owner and its model."""
    return ReasoningSealer(key).bound("key:alice", "gpt-oss-demo")


@pytest.fixture
def sealer() -> BoundSealer:
    return bound()


TEXTS = [
    "",
    "The user wants the weather in Paris; call get_weather.",
    "é 中文 Ελληνικά 😀 \u200d\ufeff",
    "nul \x00 and a lone surrogate \ud800",
    "x" * 1_000_000,
    "line\nbreaks\r\n\ttabs",
]


@pytest.mark.parametrize("text", TEXTS, ids=["empty", "ascii", "unicode", "odd", "long", "ws"])
def test_round_trip(sealer: BoundSealer, text: str) -> None:
    token = sealer.seal(text)
    assert token.isascii() and token.startswith(TOKEN_PREFIX)
    assert set(token[len(TOKEN_PREFIX) :]) <= set(B64URL)
    assert sealer.open(token) == text
    # Another sealer with the same key (another replica, or after a restart) opens it too.
    assert bound().open(token) == text


def test_tokens_are_fresh_each_time(sealer: BoundSealer) -> None:
    tokens = {sealer.seal("same text") for _ in range(20)}
    assert len(tokens) == 20  # random nonce: equal texts are not recognisable


def test_every_single_character_change_is_refused(sealer: BoundSealer) -> None:
    token = sealer.seal("think step by step")
    for position, original in enumerate(token):
        for replacement in {"A", "B", "_", "-", "z", "0", ".", "=", "+", "/", "é"} - {original}:
            tampered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(SealError):
                sealer.open(tampered)


@pytest.mark.parametrize("cut", [1, 2, 3, 16, 32])
def test_truncated_or_extended_is_refused(sealer: BoundSealer, cut: int) -> None:
    token = sealer.seal("some reasoning")
    with pytest.raises(SealError):
        sealer.open(token[:-cut])
    with pytest.raises(SealError):
        sealer.open(token + "A" * cut)


def test_foreign_key_is_refused(sealer: BoundSealer) -> None:
    token = bound(OTHER_KEY).seal("from another server")
    with pytest.raises(SealError, match="a key this server no longer holds"):
        sealer.open(token)


def test_key_id_is_a_public_fingerprint() -> None:
    assert ReasoningSealer(KEY).key_id == ReasoningSealer(KEY).key_id
    assert ReasoningSealer(KEY).key_id != ReasoningSealer(OTHER_KEY).key_id
    assert len(ReasoningSealer(KEY).key_id) == 8


def test_wrong_version_is_refused(sealer: BoundSealer) -> None:
    token = sealer.seal("text")
    with pytest.raises(SealError, match="unsupported version"):
        sealer.open("hpr3." + token[len(TOKEN_PREFIX) :])
    with pytest.raises(
        SealError, match=r"unsupported version \('hpr1'; this server reads 'hpr2'\)"
    ):
        sealer.open("hpr1." + token[len(TOKEN_PREFIX) :])  # the old, unbound format
    with pytest.raises(SealError, match="unsupported version"):
        sealer.open("hpr0.AAAA")


def test_associated_data_binds_version_and_purpose(sealer: BoundSealer) -> None:
    """Ciphertext made under our key and token layout, but other associated data, is refused."""
    key_id = bytes.fromhex(sealer.sealer.key_id)
    issued = int(time.time()).to_bytes(8, "big")
    nonce = os.urandom(12)
    for aad in (None, b"", b"hpr1.harmony-proxy reasoning\0" + key_id, b"something else"):
        raw = key_id + issued + nonce + AESGCM(KEY).encrypt(nonce, b"forged", aad)
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        with pytest.raises(SealError, match="altered"):
            sealer.open(token)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "hpr2.",
        "hpr2.!!!!",
        "hpr2.AAAA",
        "hpr2." + "A" * 42,  # long enough for the layout, still not ours
        "hpr2.AAAA====",
        "hpr2.A",
        "hpr2.ab cd",
        "hpr2.\u00e9\u00e9\u00e9\u00e9",
        " hpr1.AAAA",
        "gAAAAABhZ",  # what OpenAI's encrypted_content looks like
    ],
)
def test_garbage_is_refused(sealer: BoundSealer, garbage: str) -> None:
    with pytest.raises(SealError):
        sealer.open(garbage)


@pytest.mark.parametrize("not_text", [None, b"hpr1.AAAA", 12, ["hpr1."]])
def test_non_strings_are_refused(sealer: BoundSealer, not_text: object) -> None:
    with pytest.raises(SealError):
        sealer.open(not_text)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(),
    position=st.integers(min_value=0),
    replacement=st.characters(codec="ascii"),
)
def test_property_round_trip_and_tamper(text: str, position: int, replacement: str) -> None:
    sealer = bound()
    token = sealer.seal(text)
    assert sealer.open(token) == text
    position %= len(token)
    if token[position] != replacement:
        with pytest.raises(SealError):
            sealer.open(token[:position] + replacement + token[position + 1 :])


# Keys.


def test_constructor_wants_32_bytes() -> None:
    for bad in (b"", b"x" * 16, b"x" * 31, b"x" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            ReasoningSealer(bad)


def test_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "deeper" / "reasoning.key"
    old_umask = os.umask(0)  # even a permissive umask leaves the key private
    try:
        first = ReasoningSealer.load(None, key_file)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(decode_key(key_file.read_text())) == KEY_BYTES
    assert key_file.read_text().endswith("\n")
    assert [p.name for p in key_file.parent.iterdir()] == ["reasoning.key"]  # no temp left
    token = first.bound("o", "m").seal("survives a restart")
    second = ReasoningSealer.load(None, key_file)
    assert second.key_id == first.key_id
    assert second.bound("o", "m").open(token) == "survives a restart"
    # Blank means "not given", like an empty environment variable.
    assert ReasoningSealer.load("  ", key_file).key_id == first.key_id


def test_key_file_line_works_as_the_key_string(tmp_path: Path) -> None:
    """How replicas share a key: the file's one line goes into the others' flag or env."""
    key_file = tmp_path / "reasoning.key"
    generated = ReasoningSealer.load(None, key_file)
    shared = ReasoningSealer.load(key_file.read_text().strip(), tmp_path / "unused.key")
    assert shared.key_id == generated.key_id
    assert not (tmp_path / "unused.key").exists()


def test_concurrent_generation_agrees_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "race" / "reasoning.key"
    barrier = threading.Barrier(6)

    def load(_: int) -> str:
        barrier.wait()
        return ReasoningSealer.load(None, key_file).key_id

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(load, range(6)))
    assert ids == {ReasoningSealer.load(None, key_file).key_id}
    assert [p.name for p in key_file.parent.iterdir()] == ["reasoning.key"]


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: base64.urlsafe_b64encode(k).decode(),
        lambda k: base64.urlsafe_b64encode(k).decode().rstrip("="),
        lambda k: base64.b64encode(k).decode(),
        lambda k: base64.b64encode(k).decode().rstrip("="),
        lambda k: "  " + base64.b64encode(k).decode() + "\n",
    ],
    ids=["urlsafe", "urlsafe-nopad", "std", "std-nopad", "whitespace"],
)
def test_key_string_forms(tmp_path: Path, encode: object) -> None:
    # Bytes whose base64 uses + and / (or - and _) exercise both alphabets.
    key = bytes([0xFB, 0xFF, 0xBF] * 10 + [0xFE, 0xFF])
    token = bound(key).seal("shared")
    key_file = tmp_path / "reasoning.key"
    loaded = ReasoningSealer.load(encode(key), key_file)  # type: ignore[operator]
    assert loaded.bound("key:alice", "gpt-oss-demo").open(token) == "shared"
    assert not key_file.exists()  # a given key is never written anywhere


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not base64 at all!", "not base64"),
        ("%%%%", "not base64"),
        ("A", "not base64"),
        (base64.b64encode(b"k" * 16).decode(), "16 bytes; it must be 32 bytes"),
        (base64.b64encode(b"k" * 64).decode(), "64 bytes; it must be 32 bytes"),
    ],
)
def test_bad_key_string_is_a_clear_value_error(tmp_path: Path, bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        ReasoningSealer.load(bad, tmp_path / "reasoning.key")
    assert bad.strip() not in str(caught.value) or len(bad) < 3  # the key is never echoed
    assert not (tmp_path / "reasoning.key").exists()


def test_bad_key_file_names_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "reasoning.key"
    key_file.write_text("definitely not a key\n")
    with pytest.raises(ValueError, match=f"key file {key_file}"):
        ReasoningSealer.load(None, key_file)
    key_file.write_bytes(b"\xff\xfe binary")
    with pytest.raises(ValueError, match="not base64"):
        ReasoningSealer.load(None, key_file)


def test_readable_key_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "reasoning.key"
    key_file.write_text(base64.urlsafe_b64encode(KEY).decode() + "\n")
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="proxy"):
        sealer = ReasoningSealer.load(None, key_file)
    assert sealer.key_id == ReasoningSealer(KEY).key_id
    assert "readable by other users" in caplog.text
