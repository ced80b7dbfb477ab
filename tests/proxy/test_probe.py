"""`wait_until_ok`, which the CLI's engine process, the tests and the benchmarks wait with."""

from __future__ import annotations

import subprocess
import sys

import pytest

from proxy.server.probe import ExitedWhileStarting, wait_until_ok
from tests.support.replicas import free_port


def test_returns_once_the_server_answers(scripted_server):
    wait_until_ok(f"{scripted_server.url}/health", timeout=10)


def test_a_process_that_exits_ends_the_wait_at_once():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(ExitedWhileStarting) as caught:
        wait_until_ok(f"http://127.0.0.1:{free_port()}/ready", timeout=60, process=process)
    assert caught.value.returncode == 3


def test_a_url_that_never_answers_times_out():
    with pytest.raises(TimeoutError, match="did not answer 200"):
        wait_until_ok(f"http://127.0.0.1:{free_port()}/ready", timeout=0.3, interval=0.1)
