"""SIGHUP rotates the reasoning key file of a running server, as it reloads the API key file.

`harmony-proxy serve` as a process (in front of a fake replica whose completions reason before
answering), stateless (`--response-store off`), its reasoning sealed for replay: after the new key
is put first in the file and SIGHUP sent, new tokens are sealed under it and old ones still
replay; once the old key is removed and SIGHUP sent again, an old token is refused as any token
the server cannot open (400 `invalid_encrypted_content`); a broken file keeps the keys it had.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.server.probe import wait_until_ok
from tests.proxy.test_api_keys import wait_for
from tests.remote.fake_replica import FakeBehaviour, start_fake, stop_fake
from tests.support.loop import BackgroundLoop
from tests.support.replicas import free_port

MODEL = "gpt-oss-demo"


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def fake_url(background_loop: BackgroundLoop) -> Iterator[str]:
    fake = background_loop.run(start_fake(FakeBehaviour(replay_tokens=60)))
    yield fake.url
    background_loop.run(stop_fake(fake))


def _sealed_reasoning(url: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/responses",
        json={
            "model": MODEL,
            "input": "Hello?",
            "store": False,
            "include": ["reasoning.encrypted_content"],
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    (item,) = [i for i in response.json()["output"] if i["type"] == "reasoning"]
    return item


def _replay(url: str, reasoning: dict[str, Any]) -> httpx.Response:
    item = {**reasoning, "content": None}
    return httpx.post(
        f"{url}/v1/responses",
        json={
            "model": MODEL,
            "store": False,
            "input": [
                {"role": "user", "content": "Hello?"},
                item,
                {"role": "user", "content": "And?"},
            ],
        },
        timeout=30,
    )


def test_sighup_rotates_the_reasoning_key_file(fake_url: str, tmp_path: Path) -> None:
    old, new = _key(), _key()
    key_file = tmp_path / "reasoning.key"
    key_file.write_text(old + "\n")
    key_file.chmod(0o600)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "stderr.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--backend-url", fake_url]
        + ["--response-store", "off", "--reasoning-key-file", str(key_file)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until_ok(f"{url}/ready", timeout=120, process=process, interval=0.2)
        before = _sealed_reasoning(url)

        key_file.write_text(f"{new}\n{old}\n")  # rotation, step one: the new key seals
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reasoning keys reloaded" in log.read_text())
        after = _sealed_reasoning(url)
        assert after["encrypted_content"][:11] != before["encrypted_content"][:11]  # key id
        assert _replay(url, before).status_code == 200  # the old key still opens
        assert _replay(url, after).status_code == 200

        key_file.write_text(new + "\n")  # step two, after the TTL: the old key removed
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: log.read_text().count("reasoning keys reloaded") == 2)
        refused = _replay(url, before)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_encrypted_content"
        assert _replay(url, after).status_code == 200

        key_file.write_text("not a key\n")  # a broken file: the keys it had stay
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reasoning keys not reloaded" in log.read_text())
        assert _replay(url, after).status_code == 200
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    output = log.read_text()
    assert code == 0, output
    assert old not in output and new not in output
