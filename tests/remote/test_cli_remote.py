"""`harmony-proxy serve --backend-url ...` (and HARMONY_PROXY_BACKEND_URL): the CLI wiring.

The command runs as a real subprocess in front of two scripted replicas (real HTTP servers), so
this needs no engine: it proves that no engine is loaded, that the replicas' model is served,
and that the pool's flags reach the pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import openai

from proxy.server.cli import parse_settings
from proxy.server.cli_scale import build_pool
from tests.remote.fake_replica import FakeBehaviour, start_fake, stop_fake
from tests.support.replicas import free_port


def test_flags_and_environment_build_the_pool():
    environ = {"HARMONY_PROXY_BACKEND_URL": "http://a:1, http://b:2"}
    settings = parse_settings(
        ["serve", "--eject-after", "5", "--no-prefix-affinity", "--affinity-block-tokens", "32"],
        environ=environ,
    )
    pool = build_pool(settings)
    assert [r.url for r in pool.replicas] == ["http://a:1", "http://b:2"]
    assert pool.eject_after == 5
    assert (pool.router.enabled, pool.router.block_tokens) == (False, 32)
    flagged = build_pool(parse_settings(["serve", "--backend-url", "http://c:3"], environ=environ))
    assert [r.url for r in flagged.replicas] == ["http://a:1", "http://b:2", "http://c:3"]


def test_the_prefix_affinity_variable_is_a_boolean():
    for text, enabled in (("off", False), ("No", False), ("0", False), ("ON", True), ("1", True)):
        environ = {"HARMONY_PROXY_PREFIX_AFFINITY": text, "HARMONY_PROXY_BACKEND_URL": "http://a:1"}
        settings = parse_settings(["serve"], environ=environ)
        assert build_pool(settings).router.enabled is enabled, text


def test_serve_in_front_of_replicas_loads_no_engine(background_loop, tmp_path):
    fakes = [background_loop.run(start_fake(FakeBehaviour())) for _ in range(2)]
    port = free_port()
    env = {**os.environ, "HARMONY_PROXY_BACKEND_URL": ",".join(f.url for f in fakes)}
    log = (tmp_path / "serve.log").open("a+")
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--date", "2026-01-15"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, _read(log)
            assert time.monotonic() < deadline, _read(log)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["gpt-oss-demo"]
        reply = client.chat.completions.create(
            model="gpt-oss-demo", messages=[{"role": "user", "content": "Hi"}], max_tokens=20
        )
        assert reply.choices[0].message.content == "Hi from the fake replica."
        output = _read(log)
        assert "vLLM engine" not in output and fakes[0].url in output
    finally:
        process.terminate()
        process.wait(timeout=30)
        for fake in fakes:
            background_loop.run(stop_fake(fake))


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()
