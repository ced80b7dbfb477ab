"""Per-key limits: requests open at once and tokens per minute, 429 with `Retry-After` at the edge.

On the real server (127.0.0.1, a scripted engine slow enough to hold a stream open), with the
OpenAI and Anthropic SDKs as clients; the window arithmetic on `CallerBudget` with a clock of
its own.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.caller import caller_for_key
from proxy.server.key_limits import CallerBudget
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import body, toks
from tests.support.server_fixtures import TEST_DATE

URL = "/v1/chat/completions"
ALICE = "sk-alice-0123456789abcdef"
BOB = "sk-bob-fedcba9876543210"
SHORT = toks("<|channel|>final<|message|>ok<|return|>")
LONG = toks("<|channel|>analysis<|message|>" + "thinking " * 400 + "<|end|>")


def limited_server(make_server, tmp_path: Path, script: Script, **limits: int):
    path = tmp_path / "keys"
    path.write_text(f"{ALICE} alice\n{BOB} bob\n")
    path.chmod(0o600)
    backend = ScriptedBackend(script)
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        api_key_file=str(path),
        **limits,
    )
    return make_server(config, backend)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_past_its_concurrency_a_key_gets_429_with_retry_after_and_others_do_not(
    make_server, tmp_path
):
    server = limited_server(make_server, tmp_path, Script([LONG], delay=0.02), key_max_concurrent=1)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream(
            "POST", URL, json=body(server.model, stream=True), headers=bearer(ALICE)
        ) as open_stream:
            assert open_stream.status_code == 200
            lines = open_stream.iter_lines()  # (kept: a dropped iterator closes the stream)
            next(lines)  # generating: alice's one place is taken
            second = client.post(URL, json=body(server.model), headers=bearer(ALICE))
            # Refused before the body is read: not even its JSON is looked at.
            garbage = client.post(
                URL,
                content=b"{not json",
                headers={**bearer(ALICE), "content-type": "application/json"},
            )
            sdk = openai.OpenAI(base_url=server.base_url, api_key=ALICE, max_retries=0)
            with pytest.raises(openai.RateLimitError) as by_sdk:
                sdk.models.list()
            claude = anthropic.Anthropic(base_url=server.url, api_key=ALICE, max_retries=0)
            with pytest.raises(anthropic.RateLimitError) as by_claude:
                claude.messages.create(
                    model=server.model,
                    max_tokens=8,
                    messages=[{"role": "user", "content": "Hi"}],
                )
            server.backend.script = Script([SHORT])
            other = client.post(URL, json=body(server.model), headers=bearer(BOB))
        # The stream is closed: once the server has seen it go, alice's place is free again.
        deadline = time.monotonic() + 10
        while (
            after := client.post(URL, json=body(server.model), headers=bearer(ALICE))
        ).status_code == 429:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    error = second.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "at once for this API key" in error["message"]
    assert garbage.status_code == 429
    assert by_sdk.value.status_code == 429
    assert by_claude.value.status_code == 429
    assert by_claude.value.body["error"]["type"] == "rate_limit_error"
    assert other.status_code == 200
    assert after.status_code == 200


def test_past_its_tokens_per_minute_a_key_waits_and_is_told_how_long(make_server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="proxy.requests")
    server = limited_server(make_server, tmp_path, Script([SHORT]), key_tokens_per_minute=50)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post(URL, json=body(server.model), headers=bearer(ALICE))
        spent = first.json()["usage"]["total_tokens"]
        refused = client.post(
            "/v1/messages",
            json={
                "model": server.model,
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers={"x-api-key": ALICE},
        )
        bob = client.post(URL, json=body(server.model), headers=bearer(BOB))
        metrics = client.get("/metrics").text
    assert first.status_code == 200 and spent >= 50  # (the system prompt alone is more)
    assert refused.status_code == 429
    assert refused.json() == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "This API key has used its 50 tokens per minute; retry in "
            f"{refused.headers['retry-after']} s.",
        },
    }
    assert 50 <= int(refused.headers["retry-after"]) <= 60
    assert bob.status_code == 200
    assert 'harmony_proxy_rejected_requests_total{reason="key_tokens"} 1.0' in metrics
    assert (
        'harmony_proxy_requests_total{api="messages",finish_reason="",key="alice",status="429"} 1.0'
        in metrics
    )
    lines = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "proxy.requests" and r.getMessage().startswith("{")
    ]
    assert [(line["key"], line["status"]) for line in lines] == [
        ("alice", 200),
        ("alice", 429),
        ("bob", 200),
    ]


def test_the_token_window_slides():
    now = [0.0]
    budget = CallerBudget(tokens_per_minute=50, clock=lambda: now[0])
    alice = caller_for_key(b"a", "alice")
    assert budget.refusal(alice.owner) is None
    budget.spend(alice, 30)
    now[0] = 10.0
    budget.spend(alice, 30)
    now[0] = 20.0
    reason, error = budget.refusal(alice.owner)
    # The first 30 leave the window at t=60; then 30 < 50.
    assert reason == "key_tokens" and error.retry_after == 40
    now[0] = 60.5
    assert budget.refusal(alice.owner) is None
    budget.spend(alice, 100)
    reason, error = budget.refusal(alice.owner)
    assert error.retry_after == 60  # its own 100 must leave: the 30 left alone is under 50
    now[0] = 200.0
    assert budget.refusal(alice.owner) is None and not budget._spent


def test_keys_of_one_name_share_their_limits():
    budget = CallerBudget(max_concurrent=1)
    old, new = caller_for_key(b"old", "alice"), caller_for_key(b"new", "alice")
    budget.enter(old.owner)
    assert budget.refusal(new.owner) is not None
    budget.leave(old.owner)
    assert budget.refusal(new.owner) is None and not budget._open


def test_an_abandoned_stream_is_charged_the_tokens_it_read(make_server, tmp_path):
    # The prompt alone is under the budget; the prompt and 300 streamed tokens are over it.
    server = limited_server(
        make_server, tmp_path, Script([LONG], delay=0.002), key_tokens_per_minute=300
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream(
            "POST", URL, json=body(server.model, stream=True), headers=bearer(ALICE)
        ) as stream:
            data_lines = 0
            for line in stream.iter_lines():
                data_lines += line.startswith("data: ")
                if data_lines > 300:
                    break
        # Wait until the server has seen the client go and settled the generation.
        deadline = time.monotonic() + 10
        while "harmony_proxy_requests_in_flight 0.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = client.post(URL, json=body(server.model), headers=bearer(ALICE))
        prompt = client.post(URL, json=body(server.model), headers=bearer(BOB))
    assert prompt.json()["usage"]["prompt_tokens"] < 300
    assert after.status_code == 429
