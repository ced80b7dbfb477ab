"""A proxy killed (SIGKILL: nothing of it runs again) while it generates a background
response: a replica on the same store marks the response failed once its lease has lapsed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from proxy.server.settings import ProxyConfig
from tests.background.support import wait_for
from tests.support.server_fixtures import TEST_DATE

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the proxy process exited"
    try:
        return httpx.get(f"{url}/ready").status_code == 200
    except httpx.TransportError:
        return False


def test_a_killed_proxys_response_is_marked_failed_by_another(make_server, location, tmp_path):
    key_file = str(tmp_path / "reasoning.key")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.background.serve_process", "--port", str(port)]
        + ["--store", location, "--key-file", key_file, "--lease", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(url, proc), timeout=120, period=0.1)
        doomed = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        created = doomed.responses.create(model="scripted-gpt-oss", input="Hi", background=True)
        wait_for(lambda: doomed.responses.retrieve(created.id).status == "in_progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    config = ProxyConfig(
        served_model_names=("scripted-gpt-oss",),
        conversation_date=TEST_DATE,
        response_store=location,
        reasoning_key_file=key_file,
    )
    survivor = make_server(config)
    client = openai.OpenAI(base_url=survivor.base_url, api_key="unused", max_retries=0)
    failed = wait_for(
        lambda: (r := client.responses.retrieve(created.id)).status == "failed" and r,
        timeout=10,
    )
    assert "stopped before it finished" in failed.error.message
    # Its log, as far as the dead proxy wrote it, closed by the failure.
    events = list(client.responses.retrieve(created.id, stream=True, starting_after=1))
    assert events[-1].type == "response.failed"
    assert [e.sequence_number for e in events] == list(range(2, 2 + len(events)))
