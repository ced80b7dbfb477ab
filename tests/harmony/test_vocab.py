"""Where the o200k_base vocabulary comes from, offline first, always hash-checked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import harmony
from harmony import _vocab

GOOD = _vocab.load_vocab_bytes()
CACHE_NAME = hashlib.sha1(_vocab.VOCAB_URL.encode()).hexdigest()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env overrides, empty caches, and a download that would fail loudly."""
    for var in ("TIKTOKEN_ENCODINGS_BASE", "TIKTOKEN_RS_CACHE_DIR", "TIKTOKEN_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path / "data-gym"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(_vocab.tempfile, "tempdir", str(tmp_path / "tmp"))

    def no_network() -> None:
        raise AssertionError("the vocabulary must not be downloaded when a local copy exists")

    monkeypatch.setattr(_vocab, "_download", no_network)
    return tmp_path


def test_the_shipped_copy_in_bpe_openai_is_used_offline(offline: Path) -> None:
    assert _vocab.load_vocab_bytes() == GOOD


def test_tiktoken_encodings_base_is_read_first(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (offline / "base").mkdir()
    (offline / "base" / "o200k_base.tiktoken").write_bytes(GOOD)
    monkeypatch.setattr(_vocab, "_read_bpe_openai", lambda: pytest.fail("looked further"))
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(offline / "base"))
    assert _vocab.load_vocab_bytes() == GOOD


def test_missing_file_in_tiktoken_encodings_base_is_an_error_that_says_how_to_fix_it(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(offline / "nowhere"))
    with pytest.raises(harmony.HarmonyError) as info:
        _vocab.load_vocab_bytes()
    message = str(info.value)
    assert message.startswith("invalid tiktoken vocab file: No such file or directory")
    assert str(offline / "nowhere" / "o200k_base.tiktoken") in message
    assert "bpe-openai" in message


def test_corrupt_file_in_tiktoken_encodings_base_is_a_hash_error(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (offline / "base").mkdir()
    (offline / "base" / "o200k_base.tiktoken").write_bytes(GOOD[:-10])
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(offline / "base"))
    with pytest.raises(harmony.HarmonyError, match="hash mismatch: computed="):
        _vocab.load_vocab_bytes()


def test_rs_cache_dir_file_named_by_url_hash_is_used(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (offline / "rs").mkdir()
    (offline / "rs" / CACHE_NAME).write_bytes(GOOD)
    monkeypatch.setenv("TIKTOKEN_RS_CACHE_DIR", str(offline / "rs"))
    monkeypatch.setattr(_vocab, "_read_bpe_openai", lambda: pytest.fail("looked further"))
    assert _vocab.load_vocab_bytes() == GOOD


def test_tiktoken_cache_is_used(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (offline / "data-gym").mkdir()
    (offline / "data-gym" / CACHE_NAME).write_bytes(GOOD)
    monkeypatch.setattr(_vocab, "_read_bpe_openai", lambda: pytest.fail("looked further"))
    assert _vocab.load_vocab_bytes() == GOOD


def test_corrupt_cache_is_skipped_for_the_next_place(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (offline / "rs").mkdir()
    (offline / "rs" / CACHE_NAME).write_bytes(b"garbage")
    monkeypatch.setenv("TIKTOKEN_RS_CACHE_DIR", str(offline / "rs"))
    assert _vocab.load_vocab_bytes() == GOOD


def test_nothing_found_lists_every_place_tried(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_vocab, "_read_bpe_openai", lambda: None)
    monkeypatch.setattr(_vocab, "_download", lambda: None)
    with pytest.raises(harmony.HarmonyError) as info:
        _vocab.load_vocab_bytes()
    message = str(info.value)
    assert message.startswith("error downloading or loading vocab file")
    for place in ("tiktoken cache", "bpe-openai package", "download"):
        assert place in message
    assert "TIKTOKEN_ENCODINGS_BASE" in message


def test_downloaded_file_is_hash_checked(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vocab, "_read_bpe_openai", lambda: None)
    monkeypatch.setattr(_vocab, "_download", lambda: b"tampered")
    with pytest.raises(harmony.HarmonyError, match=r"download: .* \(hash mismatch\)"):
        _vocab.load_vocab_bytes()


def test_write_verified_vocab_gives_a_directory_for_other_tools(offline: Path) -> None:
    path = _vocab.write_verified_vocab(offline / "out")
    assert path.name == "o200k_base.tiktoken"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == _vocab.VOCAB_SHA256
