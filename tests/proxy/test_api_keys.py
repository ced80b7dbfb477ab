"""API keys with identities: the key file, its reload, and the caller's name in logs and metrics.

The file's format and its refusals are checked on `read_key_file`; everything else on the real
server (127.0.0.1, scripted engine), and the SIGHUP reload on `harmony-proxy serve` started as a
process of its own, in front of a fake replica.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.caller import caller_for_key
from proxy.server.keys import ApiKeys, KeyFileError, read_key_file
from proxy.server.probe import wait_until_ok
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import body, toks
from tests.remote.fake_replica import FakeBehaviour, start_fake, stop_fake
from tests.support.loop import BackgroundLoop
from tests.support.replicas import free_port
from tests.support.server_fixtures import TEST_DATE

URL = "/v1/chat/completions"
ANSWER = toks("<|channel|>final<|message|>ok<|return|>")
ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-fedcba9876543210"


def key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "keys"
    path.write_text(text)
    path.chmod(mode)
    return path


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "proxy.requests" and r.getMessage().startswith("{")
    ]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ------------------------------------------------------------------ the file


def test_a_key_file_holds_keys_with_or_without_names_comments_and_blank_lines(tmp_path):
    path = key_file(
        tmp_path,
        f"# the team's keys\n\n  {ALICE}   alice\n{BOB}\t# Bob's, unnamed\nsk-x bob # rotated\n",
    )
    entries = read_key_file(path)
    assert [(e.key.decode(), e.name, e.line) for e in entries] == [
        (ALICE, "alice", 3),
        (BOB, None, 4),
        ("sk-x", "bob", 5),
    ]


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        (f"# ok\n{ALICE} alice extra\n", 2, "expected KEY or KEY NAME"),
        (f"{BOB}\nalice {ALICE}/x\n", 2, "the name"),
        ("# nothing but comments\n\n", None, "holds no key"),
    ],
)
def test_a_bad_key_file_names_the_line_never_the_key(tmp_path, text, line, why):
    with pytest.raises(KeyFileError) as refused:
        read_key_file(key_file(tmp_path, text))
    message = str(refused.value)
    assert why in message and str(tmp_path / "keys") in message
    if line is not None:
        assert f"line {line}" in message
    assert ALICE not in message and BOB not in message and "alice" not in message


def test_one_key_under_two_names_is_refused(tmp_path):
    with pytest.raises(KeyFileError, match="line 2: this key is already listed"):
        ApiKeys(path=str(key_file(tmp_path, f"{ALICE} alice\n{ALICE} mallory\n")))


def test_a_key_file_others_can_write_is_refused_and_one_they_can_read_is_warned_about(
    tmp_path, caplog
):
    with pytest.raises(KeyFileError, match="writable by other users"):
        read_key_file(key_file(tmp_path, f"{ALICE} alice\n", mode=0o606))
    caplog.set_level(logging.WARNING, logger="proxy")
    keys = ApiKeys(path=str(key_file(tmp_path, f"{ALICE} alice\n", mode=0o644)))
    assert keys.match(ALICE.encode()) == caller_for_key(ALICE.encode(), "alice")
    assert "readable or writable by other users (mode 0644)" in caplog.text
    assert ALICE not in caplog.text


def test_flag_keys_and_file_keys_combine_and_the_file_names_a_flag_key(tmp_path):
    keys = ApiKeys(("sk-flag", ALICE), str(key_file(tmp_path, f"{ALICE} alice\n")))
    assert keys.match(b"sk-flag") == caller_for_key(b"sk-flag")
    assert keys.match(ALICE.encode()).name == "alice"
    assert keys.match(b"sk-flag-") is None and keys.match(b"") is None


def test_a_reload_that_fails_keeps_the_keys_and_says_why(tmp_path, caplog):
    path = key_file(tmp_path, f"{ALICE} alice\n")
    keys = ApiKeys(path=str(path))
    path.write_text(f"{BOB} bob\n{ALICE} alice trailing-junk\n")
    caplog.set_level(logging.INFO, logger="proxy")
    assert keys.reload() is False
    assert keys.match(ALICE.encode()) is not None and keys.match(BOB.encode()) is None
    assert "not reloaded, the previous 1 stay" in caplog.text and "line 2" in caplog.text
    assert ALICE not in caplog.text and BOB not in caplog.text


# ------------------------------------------------------------------ on the server


def named_server(make_server, path: Path, **config: object):
    backend = ScriptedBackend(Script([ANSWER]))
    return make_server(
        ProxyConfig(
            served_model_names=(backend.model_name,),
            conversation_date=TEST_DATE,
            api_key_file=str(path),
            **config,
        ),
        backend,
    )


def test_each_request_carries_its_keys_name_into_the_log_and_the_metrics(
    make_server, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="proxy.requests")
    server = named_server(make_server, key_file(tmp_path, f"{ALICE} alice\n{BOB}\n"))
    bob = caller_for_key(BOB.encode()).name
    with httpx.Client(base_url=server.url) as client:
        assert client.post(URL, json=body(server.model), headers=bearer(ALICE)).status_code == 200
        assert client.post(URL, json=body(server.model), headers=bearer(BOB)).status_code == 200
        anthropic = client.post(
            "/v1/messages",
            json={
                "model": server.model,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "Hi"}],
            },
            headers={"x-api-key": ALICE},
        )
        assert anthropic.status_code == 200
        assert (
            client.post(URL, json=body(server.model), headers=bearer("sk-nope")).status_code == 401
        )
        metrics = client.get("/metrics").text
    assert [(line["api"], line["key"]) for line in request_lines(caplog)] == [
        ("chat.completions", "alice"),
        ("chat.completions", bob),
        ("messages", "alice"),
    ]
    for api, key in (
        ("chat.completions", "alice"),
        ("chat.completions", bob),
        ("messages", "alice"),
    ):
        labels = f'api="{api}",finish_reason="stop",key="{key}",status="200"'
        assert f"harmony_proxy_requests_total{{{labels}}} 1.0" in metrics, metrics
    assert ALICE not in caplog.text and BOB not in caplog.text and ALICE not in metrics
    assert "sk-nope" not in metrics and 'key="anonymous"' not in metrics


def test_a_reload_swaps_the_keys_for_the_next_request(make_server, tmp_path):
    path = key_file(tmp_path, f"{ALICE} alice\n")
    server = named_server(make_server, path)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1/models", headers=bearer(ALICE)).status_code == 200
        assert client.get("/v1/models", headers=bearer(BOB)).status_code == 401
        path.write_text(f"{BOB} bob\n")
        server.app.state.lifecycle.reload()
        assert client.get("/v1/models", headers=bearer(BOB)).status_code == 200
        assert client.get("/v1/models", headers=bearer(ALICE)).status_code == 401


# ------------------------------------------------------------------ /metrics


def test_a_metrics_key_closes_metrics_to_everyone_else(make_server, tmp_path):
    server = named_server(
        make_server, key_file(tmp_path, f"{ALICE} alice\n"), metrics_key="scrape-me"
    )
    with httpx.Client(base_url=server.url) as client:
        missing = client.get("/metrics")
        api_key = client.get("/metrics", headers=bearer(ALICE))
        right = client.get("/metrics", headers=bearer("scrape-me"))
        health = client.get("/health")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    assert api_key.status_code == 401
    assert right.status_code == 200 and "harmony_proxy_requests_in_flight" in right.text
    assert health.status_code == 200


def test_without_a_metrics_key_metrics_stay_open_even_with_api_keys(make_server, tmp_path):
    server = named_server(make_server, key_file(tmp_path, f"{ALICE} alice\n"))
    assert httpx.get(f"{server.url}/metrics").status_code == 200


# ------------------------------------------------------------------ SIGHUP, as a process


@pytest.fixture
def fake_url(background_loop: BackgroundLoop) -> Iterator[str]:
    fake = background_loop.run(start_fake(FakeBehaviour()))
    yield fake.url
    background_loop.run(stop_fake(fake))


def test_sighup_reloads_the_key_file_of_a_running_server(fake_url, tmp_path):
    """`harmony-proxy serve --api-key-file` as a process: after SIGHUP an added key works, a
    removed one gets 401, and a broken file keeps the keys it had (the reason in its log)."""
    path = key_file(tmp_path, f"{ALICE} alice\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "stderr.log").open("a+")
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port)]
        + ["--backend-url", fake_url, "--api-key-file", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until_ok(f"{url}/ready", timeout=120, process=process, interval=0.2)

        def status(key: str) -> int:
            return httpx.get(f"{url}/v1/models", headers=bearer(key), timeout=10).status_code

        assert (status(ALICE), status(BOB)) == (200, 401)
        path.write_text(f"# alice left\n{BOB} bob\n")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: status(BOB) == 200)
        assert status(ALICE) == 401
        path.write_text(f"{ALICE} alice oops-a-third-field\n")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "not reloaded" in (tmp_path / "stderr.log").read_text())
        assert (status(ALICE), status(BOB)) == (401, 200)
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    output = (tmp_path / "stderr.log").read_text()
    assert code == 0, output
    assert ALICE not in output and BOB not in output


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ------------------------------------------------------------------ the real engine


@pytest.mark.engine
def test_two_named_keys_on_the_real_engine_are_told_apart_in_log_metrics_and_budget(
    make_server, vllm_backend, tmp_path, caplog
):
    """The demo model on vLLM behind a key file: alice (OpenAI SDK) and bob (Anthropic SDK)
    each appear under their name in the request log and the requests metric, and alice's
    tokens, recorded when her generation settled, spend her budget and not bob's."""
    import anthropic
    import openai

    caplog.set_level(logging.INFO, logger="proxy.requests")
    config = ProxyConfig(
        served_model_names=(vllm_backend.model_name,),
        conversation_date=TEST_DATE,
        api_key_file=str(key_file(tmp_path, f"{ALICE} alice\n{BOB} bob\n")),
        key_tokens_per_minute=60,
    )
    server = make_server(config, vllm_backend)
    alice = openai.OpenAI(base_url=server.base_url, api_key=ALICE, max_retries=0)
    answer = alice.chat.completions.create(
        model=server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=16
    )
    assert answer.usage.total_tokens >= 60  # (the system prompt alone is more)
    bob = anthropic.Anthropic(base_url=server.url, api_key=BOB, max_retries=0)
    message = bob.messages.create(
        model=server.model, max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.usage.output_tokens > 0
    with pytest.raises(openai.RateLimitError) as refused:
        alice.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=16
        )
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    metrics = httpx.get(f"{server.url}/metrics").text
    lines = request_lines(caplog)
    assert [(line["api"], line["key"], line["status"]) for line in lines] == [
        ("chat.completions", "alice", 200),
        ("messages", "bob", 200),
        ("chat.completions", "alice", 429),
    ]
    assert lines[0]["prompt_tokens"] + lines[0]["completion_tokens"] == answer.usage.total_tokens
    for api, key, status in (
        ("chat.completions", "alice", "200"),
        ("messages", "bob", "200"),
        ("chat.completions", "alice", "429"),
    ):
        assert f'api="{api}"' in metrics
        assert any(
            line.startswith("harmony_proxy_requests_total{")
            and f'api="{api}"' in line
            and f'key="{key}"' in line
            and f'status="{status}"' in line
            for line in metrics.splitlines()
        ), metrics
    assert ALICE not in caplog.text + metrics and BOB not in caplog.text + metrics


def test_sighup_to_the_supervisor_reloads_every_worker(fake_url, tmp_path):
    """`--workers 2`: the supervisor forwards SIGHUP, and each worker (whichever the kernel
    hands a connection to) serves the new keys."""
    if not sys.platform.startswith("linux"):
        pytest.skip("SO_REUSEADDR sharing is Linux behaviour")
    path = key_file(tmp_path, f"{ALICE} alice\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--port", str(port), "--workers", "2"]
        + ["--backend-url", fake_url, "--api-key-file", str(path)],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
    )
    try:
        wait_for(lambda: log_path.read_text().count("Ready. Point the OpenAI SDK") == 2, 180)

        def statuses(key: str) -> set[int]:
            codes = set()
            for _ in range(12):  # a fresh connection each: either worker may answer
                with httpx.Client(timeout=10) as client:
                    codes.add(client.get(f"{url}/v1/models", headers=bearer(key)).status_code)
            return codes

        assert statuses(ALICE) == {200} and statuses(BOB) == {401}
        path.write_text(f"{BOB} bob\n")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: log_path.read_text().count("API keys reloaded") == 2)
        assert statuses(BOB) == {200} and statuses(ALICE) == {401}
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0, log_path.read_text()
