"""A real PostgreSQL server for the response-store tests, started once per test session, and
the `location` / `make_store` / `store` fixtures that run a store test on SQLite and on it.

The server is a throwaway cluster: `initdb` into a temporary directory, `pg_ctl start` with
TCP off (`listen_addresses=''`) and its Unix socket in that directory, so it cannot collide with
any other server or test run on the host. `initdb` refuses to run as root, so under root the
cluster belongs to the `postgres` system user (else `nobody`) and every server command runs as
that user. Each test gets its own fresh database.

The binaries are found from `$HARMONY_PROXY_PG_BIN`, `initdb` on PATH, `pg_config --bindir`,
or the Debian/Ubuntu (`/usr/lib/postgresql/<v>/bin`), source-build and Homebrew locations. `make
install-dev` installs them; only when none exists are the PostgreSQL tests skipped, saying so.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proxy.api.responses.store import ResponseStore, open_store

_CANDIDATE_DIRS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/local/pgsql/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql*/bin",
    "/usr/local/opt/postgresql*/bin",
)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def find_pg_bin() -> Path | None:
    """The directory holding `initdb`, `pg_ctl` and `postgres`, or None."""

    def complete(directory: Path) -> bool:
        return all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl"))

    override = os.environ.get("HARMONY_PROXY_PG_BIN")
    if override:
        return Path(override) if complete(Path(override)) else None
    on_path = shutil.which("initdb")
    if on_path and complete(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            bindir = ""
        if bindir and complete(Path(bindir)):
            return Path(bindir)
    for pattern in _CANDIDATE_DIRS:
        found = sorted(Path("/").glob(pattern.lstrip("/")), key=_version_key, reverse=True)
        for directory in found:
            if complete(directory):
                return directory
    return None


@dataclass
class PostgresServer:
    """A running throwaway cluster reached over its Unix socket as superuser `postgres`."""

    bin_dir: Path
    root: Path
    socket_dir: Path
    run_as: str | None

    def restart(self) -> None:
        """Stop (fast: connections are cut) and start the server again on the same socket."""
        result = _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w"]
            # -l: the new postmaster must not inherit our captured stdout (run() would wait
            # for it to close, i.e. forever).
            + ["-l", str(self.root / "server.log"), "-t", "60", "restart"],
            self.run_as,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _run(cmd: list[str], run_as: str | None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    if run_as is not None:
        kwargs["user"] = run_as
        kwargs["group"] = pwd.getpwnam(run_as).pw_gid
        kwargs["extra_groups"] = []
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    pytest.importorskip("psycopg", reason="psycopg is not installed (make install-dev)")
    bin_dir = find_pg_bin()
    override = os.environ.get("HARMONY_PROXY_PG_BIN")
    if bin_dir is None and override:
        pytest.fail(f"HARMONY_PROXY_PG_BIN={override} holds no executable initdb and pg_ctl")
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, via pg_config, or "
            "in /usr/lib/postgresql/*/bin; `make install-dev` installs them, or set "
            "HARMONY_PROXY_PG_BIN"
        )
    run_as: str | None = None
    if os.geteuid() == 0:
        for candidate in ("postgres", "nobody"):
            try:
                pwd.getpwnam(candidate)
            except KeyError:
                continue
            run_as = candidate
            break
        else:
            pytest.skip("running as root and neither a `postgres` nor a `nobody` user exists")
    # Short path: a Unix socket path must fit in ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="hp-pg-"))
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    init = _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        run_as,
        env=env,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    options = (
        f"-c listen_addresses='' -k {root} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c shared_buffers=16MB -c max_connections=60"
    )
    start = _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        run_as,
        env=env,
    )
    if start.returncode != 0:
        log = (
            (root / "server.log").read_text(errors="replace")
            if (root / "server.log").exists()
            else ""
        )
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log}")
    try:
        yield PostgresServer(bin_dir=bin_dir, root=root, socket_dir=root, run_as=run_as)
    finally:
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            run_as,
            env=env,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a new SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        # Parents that do not exist yet: open_store makes them.
        return str(tmp_path / "state" / "nested" / "responses.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def make_store(location: str) -> Iterator[Callable[..., ResponseStore]]:
    """Open stores on `location` (with the given limits); all closed when the test ends."""
    stores: list[ResponseStore] = []

    def make(**limits: Any) -> ResponseStore:
        store = open_store(location, **limits)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., ResponseStore]) -> ResponseStore:
    return make_store()
