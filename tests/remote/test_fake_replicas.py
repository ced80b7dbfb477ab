"""The proxy in front of scripted replicas: start-up checks and upstream failures, on cue.

Real servers on both sides (the proxy under uvicorn, fake vLLM HTTP APIs under uvicorn), the
real openai SDK and httpx as clients; only the replicas' behaviour is scripted.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from proxy.backends.pool import ReplicaPool
from proxy.backends.remote import RemoteBackend, ReplicaMismatch
from proxy.server.settings import ProxyConfig
from tests.remote.fake_replica import FakeBehaviour, FakeReplica, start_fake, stop_fake
from tests.remote.helpers import WEATHER, ask, wait_for
from tests.support.server_fixtures import TEST_DATE


@pytest.fixture
def fakes(background_loop) -> Iterator:
    started: list[FakeReplica] = []

    def make(**kwargs) -> FakeReplica:
        fake = background_loop.run(start_fake(FakeBehaviour(**kwargs)))
        started.append(fake)
        return fake

    yield make
    for fake in started:
        if not fake.task.done():
            background_loop.run(stop_fake(fake))


@pytest.fixture
def proxy_for(make_server, background_loop):
    pools: list[ReplicaPool] = []

    def make(*urls: str, ready: bool = True):
        pool = ReplicaPool(list(urls), health_interval=0.2, eject_after=1)
        pools.append(pool)
        return make_server(ProxyConfig(conversation_date=TEST_DATE), pool, ready=ready)

    yield make
    for pool in pools:
        background_loop.run(pool.shutdown())


def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_generate_protocol_round_trip(fakes, proxy_for):
    fake = fakes()
    server = proxy_for(fake.url)
    completion = sdk(server).chat.completions.create(
        model="gpt-oss-demo", messages=ask("Hi"), max_tokens=50, seed=7
    )
    assert completion.choices[0].message.content == "Hi from the fake replica."
    assert completion.choices[0].finish_reason == "stop"
    sent = fake.behaviour.requests[-1]
    assert sent["token_ids"][:1] == [200006]  # the rendered Harmony prompt, as token ids
    params = sent["sampling_params"]
    assert params["stop_token_ids"] == [200002, 200012, 199999]
    assert (params["max_tokens"], params["seed"], params["detokenize"]) == (50, 7, False)


def test_completions_fallback_reads_token_ids(fakes, proxy_for):
    fake = fakes(generate_endpoint=False, cached_tokens=32)
    server = proxy_for(fake.url)
    completion = sdk(server).chat.completions.create(
        model="gpt-oss-demo", messages=ask("Hi"), max_tokens=50
    )
    assert completion.choices[0].message.content == "Hi from the fake replica."
    assert completion.usage.prompt_tokens_details.cached_tokens == 32
    sent = fake.behaviour.requests[-1]
    assert isinstance(sent["prompt"], list) and sent["return_token_ids"] is True
    assert sent["stop_token_ids"] == [200002, 200012, 199999]


def test_a_foreign_vocabulary_is_a_start_up_error(fakes, proxy_for, background_loop, caplog):
    fake = fakes(vocabulary="wrong")
    with pytest.raises(ReplicaMismatch, match="vocabulary"):
        background_loop.run(RemoteBackend(fake.url).start())
    server = proxy_for(fake.url, ready=False)
    wait_for(lambda: server.app.state.startup.error is not None, "the start-up error")
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 503 and "failed to start" in ready.json()["error"]["message"]
    assert fake.url not in ready.text and "vocabulary" not in ready.text  # the log says why
    assert f"{fake.url} does not use the o200k_harmony vocabulary" in caplog.text


def test_grammars_on_a_replica_without_tokenizer_are_a_clear_400(fakes, proxy_for):
    fake = fakes(vocabulary="none")
    client = sdk(proxy_for(fake.url))
    plain = client.chat.completions.create(model="gpt-oss-demo", messages=ask("Hi"), max_tokens=9)
    assert plain.choices[0].message.content == "Hi from the fake replica."
    with pytest.raises(openai.BadRequestError, match="tokenizer"):
        client.chat.completions.create(
            model="gpt-oss-demo", messages=ask("Hi"), tools=[WEATHER], tool_choice="required"
        )


def test_grammar_requests_go_to_the_replica_that_has_a_tokenizer(fakes, proxy_for):
    blind, seeing = fakes(vocabulary="none"), fakes()
    client = sdk(proxy_for(blind.url, seeing.url))
    for _ in range(3):
        client.chat.completions.create(
            model="gpt-oss-demo", messages=ask("Hi"), tools=[WEATHER], tool_choice="required"
        )
    assert len(seeing.behaviour.requests) == 3 and not blind.behaviour.requests


def test_upstream_400_is_a_400_with_its_message(fakes, proxy_for):
    fake = fakes(status=400, message="prompt too long for this replica")
    with pytest.raises(openai.BadRequestError, match="prompt too long for this replica"):
        sdk(proxy_for(fake.url)).chat.completions.create(model="gpt-oss-demo", messages=ask("Hi"))


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_upstream_is_a_503_with_retry_after(fakes, proxy_for, status):
    fake = fakes(status=status, retry_after="7")
    server = proxy_for(fake.url)
    body = {"model": "gpt-oss-demo", "messages": ask("Hi")}
    response = httpx.post(f"{server.base_url}/chat/completions", json=body)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "engine_not_ready"


def test_a_busy_replica_is_skipped_for_another(fakes, proxy_for):
    busy, free = fakes(status=503), fakes()
    client = sdk(proxy_for(busy.url, free.url))
    for i in range(4):
        reply = client.chat.completions.create(model="gpt-oss-demo", messages=ask(f"Hi {i}"))
        assert reply.choices[0].message.content == "Hi from the fake replica."
    assert len(free.behaviour.requests) == 4


def test_a_refused_connection_ejects_the_replica_and_readmits_it(fakes, proxy_for, background_loop):
    gone, alive = fakes(), fakes()
    server = proxy_for(gone.url, alive.url)
    pool = server.backend
    background_loop.run(stop_fake(gone))  # the port now refuses connections
    client = sdk(server)
    for i in range(3):
        reply = client.chat.completions.create(model="gpt-oss-demo", messages=ask(f"Hi {i}"))
        assert reply.choices[0].finish_reason == "stop"
    wait_for(lambda: not pool.replicas[0].admitted, "the ejection")
    assert httpx.get(f"{server.url}/ready").status_code == 200  # one replica is enough
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'harmony_proxy_replica_healthy{{replica="{gone.url}"}} 0.0' in metrics


def test_closing_a_stream_calls_the_abort_endpoint(fakes, proxy_for, background_loop):
    fake = fakes(answer="word " * 400)
    server = proxy_for(fake.url)
    body = {"model": "gpt-oss-demo", "messages": ask("Hi"), "stream": True, "max_tokens": 1000}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                break
    wait_for(lambda: bool(fake.behaviour.aborted), "the abort call")
    request_id = fake.behaviour.requests[-1]["request_id"]
    assert fake.behaviour.aborted == [f"generate-tokens-{request_id}"]


def test_a_request_a_replica_answers_with_500_fails_alone_and_ejects_nobody(fakes, proxy_for):
    broken, fine = fakes(status=500, message="boom"), fakes()
    server = proxy_for(broken.url, fine.url)
    body = {"model": "gpt-oss-demo", "messages": ask("Hi")}
    statuses = [
        httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=60).status_code
        for _ in range(4)
    ]
    assert set(statuses) <= {200, 500} and 500 in statuses
    pool = server.backend
    assert all(r.admitted for r in pool.replicas)


def test_without_a_tokenizer_auto_tool_requests_are_served_unconstrained(fakes, proxy_for):
    blind = fakes(vocabulary="none")
    client = sdk(proxy_for(blind.url))
    reply = client.chat.completions.create(
        model="gpt-oss-demo", messages=ask("Hi"), tools=[WEATHER]
    )
    assert reply.choices[0].finish_reason in ("stop", "tool_calls")
    sent = blind.behaviour.requests[-1]
    assert "structured_outputs" not in {**sent, **sent.get("sampling_params", {})}
