"""Replicas that require a key (`vllm serve --api-key`), and what clients may learn of replicas.

The scripted replicas here check the key with vLLM's own `AuthenticationMiddleware` (the code
`vllm serve --api-key` installs, not a copy of it), so a header vLLM would refuse is refused
here; the last test does the same against the session's real `vllm serve` replicas, which run
with a key (tests/remote/conftest.py). Client errors name a replica by its place in the pool,
never by its URL; the URL and the cause are in the server's log.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.backends.pool import ReplicaPool
from proxy.backends.remote import RemoteBackend, ReplicaMismatch
from proxy.server.settings import ProxyConfig, Settings
from tests.remote.fake_replica import FakeBehaviour, FakeReplica, start_fake, stop_fake
from tests.remote.helpers import ask, wait_for
from tests.support.replicas import REPLICA_KEY
from tests.support.server_fixtures import TEST_DATE

KEY = "sk-replica-7d1c0b"


class HeaderRecorder:
    """ASGI middleware noting each request's path and Authorization header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization")
            self.seen.append((scope["path"], auth.decode() if auth else None))
        await self.app(scope, receive, send)


@pytest.fixture
def keyed(background_loop) -> Iterator:
    """Start scripted replicas that require KEY, checked by vLLM's own middleware."""
    authenticate = pytest.importorskip("vllm.entrypoints.serve.middleware.authenticate")
    started: list[tuple[FakeReplica, HeaderRecorder]] = []

    def make(**kwargs) -> tuple[FakeReplica, HeaderRecorder]:
        recorders: list[HeaderRecorder] = []

        def wrap(app: ASGIApp) -> ASGIApp:
            recorders.append(HeaderRecorder(authenticate.AuthenticationMiddleware(app, [KEY])))
            return recorders[0]

        fake = background_loop.run(start_fake(FakeBehaviour(**kwargs), wrap))
        started.append((fake, recorders[0]))
        return fake, recorders[0]

    yield make
    for fake, _ in started:
        if not fake.task.done():
            background_loop.run(stop_fake(fake))


@pytest.fixture
def pool_server_for(make_server, background_loop):
    pools: list[ReplicaPool] = []

    def make(*urls: str, api_key: str | None, ready: bool = True, health_interval: float = 0.2):
        pool = ReplicaPool(
            list(urls), health_interval=health_interval, eject_after=1, api_key=api_key
        )
        pools.append(pool)
        return make_server(ProxyConfig(conversation_date=TEST_DATE), pool, ready=ready)

    yield make
    for pool in pools:
        background_loop.run(pool.shutdown())


def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_the_backend_key_goes_with_every_request_to_a_replica(keyed, pool_server_for):
    fake, recorder = keyed(answer="word " * 400)
    server = pool_server_for(fake.url, api_key=KEY)
    reply = sdk(server).chat.completions.create(model="gpt-oss-demo", messages=ask("Hi"))
    assert reply.choices[0].finish_reason == "stop"
    body = {"model": "gpt-oss-demo", "messages": ask("Hi"), "stream": True, "max_tokens": 1000}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                break  # closing the stream early: the proxy calls the abort endpoint
    wait_for(lambda: bool(fake.behaviour.aborted), "the abort call")
    wait_for(lambda: ("/health", f"Bearer {KEY}") in recorder.seen, "a health check")
    paths = {path for path, _ in recorder.seen}
    assert {"/v1/models", "/tokenize", "/inference/v1/generate", "/health"} <= paths
    assert "/inference/v1/abort_requests" in paths
    assert {auth for _, auth in recorder.seen} == {f"Bearer {KEY}"}


def test_a_replica_with_a_key_refuses_a_proxy_without_it(keyed, pool_server_for, background_loop):
    fake, recorder = keyed()
    keyless = RemoteBackend(fake.url)
    with pytest.raises(ReplicaMismatch, match="--backend-api-key"):
        background_loop.run(keyless.start())
    background_loop.run(keyless.shutdown())
    generate = httpx.post(f"{fake.url}/inference/v1/generate", json={"token_ids": [1]})
    assert generate.status_code == 401  # vLLM's own check, not the proxy's
    server = pool_server_for(fake.url, api_key=None, ready=False)
    wait_for(lambda: server.app.state.startup.error is not None, "the start-up error")
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 503 and fake.url not in ready.text
    chat = httpx.post(
        f"{server.base_url}/chat/completions", json={"model": "gpt-oss-demo", "messages": ask("")}
    )
    assert chat.status_code in (404, 503) and fake.url not in chat.text


def test_a_wrong_backend_key_is_never_logged_nor_answered(
    keyed, pool_server_for, background_loop, caplog
):
    fake, _ = keyed()
    wrong = "sk-wrong-key-0a9f"
    backend = RemoteBackend(fake.url, api_key=wrong)
    with pytest.raises(ReplicaMismatch) as refused:
        background_loop.run(backend.start())
    background_loop.run(backend.shutdown())
    assert wrong not in str(refused.value)
    server = pool_server_for(fake.url, api_key=wrong, ready=False)
    wait_for(lambda: server.app.state.startup.error is not None, "the start-up error")
    assert wrong not in httpx.get(f"{server.url}/ready").text
    assert "--backend-api-key" in caplog.text and wrong not in caplog.text


def test_the_backend_key_flag_and_variable_stay_out_of_the_settings_repr():
    flagged = Settings.from_sources({"backend_api_key": KEY}, {})
    from_env = Settings.from_sources({}, {"HARMONY_PROXY_BACKEND_API_KEY": KEY})
    assert flagged.backend_api_key == from_env.backend_api_key == KEY
    assert KEY not in repr(flagged) and KEY not in repr(from_env)


def test_client_errors_name_the_replica_not_its_url(background_loop, pool_server_for, caplog):
    broken = background_loop.run(start_fake(FakeBehaviour(status=500, message="boom")))
    try:
        # No health check during the test: the request itself finds the replica gone.
        server = pool_server_for(broken.url, api_key=None, health_interval=600)
        body = {"model": "gpt-oss-demo", "messages": ask("Hi")}
        failed = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=60)
        assert failed.status_code == 500
        assert failed.json()["error"]["message"].endswith(": replica 0: boom")
    finally:
        background_loop.run(stop_fake(broken))  # the port now refuses connections
    gone = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=60)
    assert gone.status_code == 503
    assert "replica 0 is unreachable" in gone.json()["error"]["message"]
    port = broken.url.rsplit(":", 1)[1]
    for answer in (failed, gone):
        assert "127.0.0.1" not in answer.text and port not in answer.text
    assert broken.url in caplog.text  # the operator still learns which one


@pytest.mark.replicas
def test_real_vllm_replicas_started_with_a_key_refuse_requests_without_it(
    vllm_replicas, pool_server, client, background_loop
):
    if not all(r.owned for r in vllm_replicas):
        pytest.skip("attached replicas (HARMONY_PROXY_TEST_REPLICAS) were started elsewhere")
    url = vllm_replicas[0].url
    assert httpx.post(f"{url}/inference/v1/generate", json={}).status_code == 401
    assert httpx.get(f"{url}/v1/models").status_code == 401
    keyless = RemoteBackend(url)
    with pytest.raises(ReplicaMismatch, match="--backend-api-key"):
        background_loop.run(keyless.start())
    background_loop.run(keyless.shutdown())
    keyed = RemoteBackend(url, api_key=REPLICA_KEY)
    background_loop.run(keyed.start())
    assert keyed.protocol == "generate"  # the probe got past the key check
    background_loop.run(keyed.shutdown())
    # The session's pool sends REPLICA_KEY: a real round trip through both replicas' check.
    reply = client.chat.completions.create(
        model=pool_server.model, messages=ask("Say hi"), max_tokens=20
    )
    assert reply.choices[0].finish_reason in ("stop", "length")
