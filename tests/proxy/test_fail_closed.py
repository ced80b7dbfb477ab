"""Deployments fail closed: a server reachable from the network does not start without a key.

Binding anything but a loopback address without `--api-key`/`--api-key-file` is a start-up
error (exit 2, as for a bad flag) unless `--allow-unauthenticated` says so; a key file that
does not load stops the start too, naming its line and never echoing a key.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.server.cli import parse_settings
from proxy.server.probe import wait_until_ok
from tests.remote.fake_replica import FakeBehaviour, start_fake, stop_fake
from tests.support.loop import BackgroundLoop
from tests.support.replicas import free_port

SECRET = "sk-do-not-echo-0123456789"


def refused(argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        parse_settings(["serve", *argv], environ=environ)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "[::]", "gateway.internal"])
def test_a_non_loopback_host_without_a_key_is_refused(host, capsys):
    message = refused(["--host", host], {}, capsys)
    assert f"--host {host}" in message and "--allow-unauthenticated" in message
    assert "--api-key-file" in message


def test_the_environment_is_held_to_the_same_rule(capsys):
    message = refused([], {"HARMONY_PROXY_HOST": "0.0.0.0"}, capsys)
    assert "HARMONY_PROXY_HOST" in message
    allowed = {"HARMONY_PROXY_HOST": "0.0.0.0", "HARMONY_PROXY_ALLOW_UNAUTHENTICATED": "yes"}
    assert parse_settings(["serve"], environ=allowed).host == "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"])
def test_loopback_needs_no_key(host):
    assert parse_settings(["serve", "--host", host], environ={}).host == host


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", SECRET],
        ["--api-key-file", "/run/secrets/keys"],
        ["--allow-unauthenticated"],
    ],
)
def test_a_key_or_the_explicit_flag_lets_a_public_host_start(argv):
    assert parse_settings(["serve", "--host", "0.0.0.0", *argv], environ={}).host == "0.0.0.0"


def test_an_empty_metrics_key_is_refused(capsys):
    assert "--metrics-key" in refused(["--metrics-key", " "], {}, capsys)
    assert "METRICS_KEY" in refused([], {"HARMONY_PROXY_METRICS_KEY": ""}, capsys)


# ------------------------------------------------------------------ as a process


def serve(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_the_server_refuses_to_listen_on_all_interfaces_without_a_key():
    process = serve(["--host", "0.0.0.0", "--port", str(free_port())])
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert "--host 0.0.0.0" in err and "--allow-unauthenticated" in err
    assert "Listening" not in out and "Traceback" not in err


def test_a_bad_key_file_stops_the_start_naming_the_line_not_the_key(tmp_path: Path):
    path = tmp_path / "keys"
    path.write_text(f"# keys\n{SECRET} alice\nalice {SECRET} extra\n")
    path.chmod(0o600)
    process = serve(["--port", str(free_port()), "--api-key-file", str(path)])
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert f"--api-key-file {path}, line 3" in err
    assert SECRET not in err + out and "Listening" not in out


@pytest.fixture
def fake_url(background_loop: BackgroundLoop) -> Iterator[str]:
    fake = background_loop.run(start_fake(FakeBehaviour()))
    yield fake.url
    background_loop.run(stop_fake(fake))


def test_allow_unauthenticated_serves_all_interfaces_on_purpose(fake_url: str):
    port = free_port()
    process = serve(
        ["--host", "0.0.0.0", "--port", str(port), "--allow-unauthenticated"]
        + ["--backend-url", fake_url]
    )
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/ready", timeout=120, process=process, interval=0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
