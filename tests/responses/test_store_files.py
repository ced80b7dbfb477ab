"""The SQLite store's files are private: they hold every stored prompt and chain of thought."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.api.responses.store import open_store
from tests.responses.stored import record


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask, so nothing below relies on the operator's."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_a_new_store_is_0600_in_a_0700_directory(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "data" / "responses.sqlite3"
    store = open_store(str(path))
    try:
        store.put(record("resp_x"))
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()  # WAL mode, a connection open
        assert [mode(f) for f in (path, wal, shm)] == [0o600, 0o600, 0o600]
        assert mode(path.parent) == 0o700
    finally:
        store.close()


def test_an_existing_open_file_is_tightened_with_a_warning(
    tmp_path: Path, open_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "responses.sqlite3"
    open_store(str(path)).close()
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        file.touch()
        os.chmod(file, 0o644)
    with caplog.at_level(logging.WARNING, logger="proxy"):
        store = open_store(str(path))
    try:
        store.put(record("resp_x"))
        assert [mode(f) for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))] == [0o600] * 3
    finally:
        store.close()
    assert "tightened" in caplog.text and "644" in caplog.text


def test_an_existing_open_directory_is_warned_about_not_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o755)
    with caplog.at_level(logging.WARNING, logger="proxy"):
        open_store(str(directory / "responses.sqlite3")).close()
    assert mode(directory) == 0o755
    assert mode(directory / "responses.sqlite3") == 0o600
    assert "open to other users" in caplog.text and "chmod 700" in caplog.text
