"""The prefix-cache salt on the wire to remote replicas (issue 20, item 3).

The proxy in front of fake vLLM replicas (real servers on both sides, real clients): each API
key's requests carry their own `cache_salt` on both of vLLM's token-level endpoints, and none
with `--shared-prefix-cache`. The bodies are also read by the installed vLLM's own request
models, the ones its `/inference/v1/generate` and `/v1/completions` parse with.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from proxy.backends.base import SamplingConfig
from proxy.backends.pool import ReplicaPool
from proxy.backends.remote_wire import completions_body, generate_body
from proxy.core.cache_salt import cache_salt
from proxy.core.caller import caller_for_key
from proxy.server.settings import ProxyConfig
from tests.remote.fake_replica import FakeBehaviour, FakeReplica, start_fake, stop_fake
from tests.remote.helpers import ask
from tests.support.server_fixtures import TEST_DATE

ALICE, BOB = "alice-secret-key", "bob-secret-key"


@pytest.fixture
def fake(background_loop) -> Iterator:
    started: list[FakeReplica] = []

    def make(**kwargs) -> FakeReplica:
        replica = background_loop.run(start_fake(FakeBehaviour(**kwargs)))
        started.append(replica)
        return replica

    yield make
    for replica in started:
        background_loop.run(stop_fake(replica))


@pytest.fixture
def proxy_for(make_server, background_loop):
    pools: list[ReplicaPool] = []

    def make(url: str, shared: bool = False):
        pool = ReplicaPool([url], health_interval=0.2, eject_after=1)
        pools.append(pool)
        config = ProxyConfig(
            conversation_date=TEST_DATE, api_keys=(ALICE, BOB), shared_prefix_cache=shared
        )
        return make_server(config, pool)

    yield make
    for pool in pools:
        background_loop.run(pool.shutdown())


def chat(server, key: str) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
    client.chat.completions.create(model="gpt-oss-demo", messages=ask("Hi"), max_tokens=20)


def salt_of(key: str) -> str:
    return cache_salt(caller_for_key(key.encode()))


@pytest.mark.parametrize("generate_endpoint", [True, False], ids=["generate", "completions"])
def test_each_key_sends_its_own_salt(fake, proxy_for, generate_endpoint):
    replica = fake(generate_endpoint=generate_endpoint)
    server = proxy_for(replica.url)
    chat(server, ALICE)
    chat(server, BOB)
    chat(server, ALICE)
    salts = [body["cache_salt"] for body in replica.behaviour.requests]
    assert salts == [salt_of(ALICE), salt_of(BOB), salt_of(ALICE)]
    assert salts[0] != salts[1]
    for body in replica.behaviour.requests:  # neither key nor owner travels
        assert ALICE not in str(body) and BOB not in str(body)
        assert caller_for_key(ALICE.encode()).owner not in str(body)


def test_the_messages_and_responses_surfaces_salt_too(fake, proxy_for):
    replica = fake()
    server = proxy_for(replica.url)
    openai.OpenAI(base_url=server.base_url, api_key=BOB, max_retries=0).responses.create(
        model="gpt-oss-demo", input="Hi", max_output_tokens=20, store=False
    )
    anthropic.Anthropic(base_url=server.url, api_key=ALICE, max_retries=0).messages.create(
        model="gpt-oss-demo", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
    )
    salts = [body["cache_salt"] for body in replica.behaviour.requests]
    assert salts == [salt_of(BOB), salt_of(ALICE)]


def test_shared_prefix_cache_sends_no_salt(fake, proxy_for):
    replica = fake()
    server = proxy_for(replica.url, shared=True)
    chat(server, ALICE)
    chat(server, BOB)
    assert all("cache_salt" not in body for body in replica.behaviour.requests)


def test_the_installed_vllm_reads_the_salt_from_both_bodies():
    """vLLM's own request models (the token-level generate endpoint's and /v1/completions')
    accept our bodies and keep the salt; our salt meets their rules (<= 128 characters, none
    of `@ / \\ NUL`)."""
    generate_request = pytest.importorskip(
        "vllm.entrypoints.scale_out.token_in_token_out.protocol"
    ).GenerateRequest
    completion_request = pytest.importorskip(
        "vllm.entrypoints.openai.completion.protocol"
    ).CompletionRequest
    salt = salt_of(ALICE)
    sampling = SamplingConfig(max_tokens=8, cache_salt=salt)
    parsed = generate_request.model_validate(generate_body([1, 2, 3], sampling, "r", "m"))
    assert parsed.cache_salt == salt
    parsed = completion_request.model_validate(completions_body([1, 2, 3], sampling, "r", "m"))
    assert parsed.cache_salt == salt
    unsalted = generate_body([1, 2, 3], SamplingConfig(max_tokens=8), "r", "m")
    assert "cache_salt" not in unsalted
    assert generate_request.model_validate(unsalted).cache_salt is None
