"""The HTTP surface with a scripted engine: errors, auth, models, metrics, CORS, parameters."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from proxy.backends.base import DEFAULT_STOP_TOKEN_IDS
from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.metrics import GapTally
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import body, fold_content, stream_chunks, toks
from tests.support.server_fixtures import TEST_DATE

URL = "/v1/chat/completions"
ANSWER = toks(
    "<|channel|>analysis<|message|>Say hi. STOP in reasoning.<|end|><|start|>assistant<|channel|>final<|message|>Hi! STOP here.<|return|>"
)


def post(server, payload, **kw) -> httpx.Response:
    with httpx.Client(base_url=server.url) as client:
        return client.post(URL, json=payload, **kw)


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


# ---------------------------------------------------------------- invalid requests


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"model": "M"}, "messages"),
        ({"model": "M", "messages": []}, "messages"),
        ({"model": "M", "messages": [{"role": "wizard", "content": "Hi"}]}, "messages[0]"),
        (
            {"model": "M", "messages": [{"role": "tool", "content": "20C"}]},
            "messages[0].tool_call_id",
        ),
        ({"model": "M", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": "M", "messages": [{"role": "user", "content": "Hi"}], "temperature": 7},
            "temperature",
        ),
        ({"model": "M", "messages": [{"role": "user", "content": "Hi"}], "n": 0}, "n"),
        (
            {"model": "M", "messages": [{"role": "user", "content": "Hi"}], "ignore_eos": True},
            "ignore_eos",
        ),
        (
            {
                "model": "M",
                "messages": [{"role": "user", "content": "Hi"}],
                "reasoning_effort": "extreme",
            },
            "reasoning_effort",
        ),
        (
            {
                "model": "M",
                "messages": [{"role": "user", "content": "Hi"}],
                "stop": ["a", "b", "c", "d", "e"],
            },
            "stop",
        ),
        (
            {"model": "M", "messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2},
            "top_logprobs",
        ),
        (
            {
                "model": "M",
                "messages": [{"role": "user", "content": "Hi"}],
                "logprobs": True,
                "top_logprobs": 21,
            },
            "top_logprobs",
        ),
        (
            {
                "model": "M",
                "messages": [{"role": "user", "content": "Hi"}],
                "functions": [{"name": "f"}],
            },
            "functions",
        ),
        (
            {
                "model": "M",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "model": "M",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_completion_tokens": 10**7,
            },
            "max_completion_tokens",
        ),
    ],
)
def test_invalid_requests_are_openai_shaped_400s(scripted_server, payload, param):
    if payload.get("model") == "M":
        payload = {**payload, "model": scripted_server.model}
    error = assert_openai_error(post(scripted_server, payload), 400, param)
    assert error["type"] == "invalid_request_error"
    assert scripted_server.backend.requests == []


def test_malformed_json_is_a_400(scripted_server):
    response = post(
        scripted_server, None, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_openai_error(response, 400)


def test_unknown_model_is_a_404_model_not_found(scripted_server):
    error = assert_openai_error(post(scripted_server, body("gpt-4o")), 404, "model")
    assert error["code"] == "model_not_found"


def test_unknown_route_is_an_openai_shaped_404(scripted_server):
    assert_openai_error(httpx.get(f"{scripted_server.url}/v1/nothing"), 404)


def test_harmless_unknown_fields_are_accepted(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    response = post(
        scripted_server,
        body(
            scripted_server.model, user="u1", store=False, metadata={"a": "b"}, service_tier="auto"
        ),
    )
    assert response.status_code == 200


# ---------------------------------------------------------------- parameters


def test_sampling_parameters_reach_the_engine(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    post(
        scripted_server,
        body(
            scripted_server.model,
            max_completion_tokens=77,
            max_tokens=5,
            temperature=0.3,
            top_p=0.9,
            seed=11,
            presence_penalty=0.5,
            frequency_penalty=-0.5,
        ),
    )
    sampling = scripted_server.backend.requests[-1].sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.seed) == (
        77,
        0.3,
        0.9,
        11,
    )
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.5, -0.5)
    assert sampling.stop_token_ids == DEFAULT_STOP_TOKEN_IDS == (200002, 200012, 199999)


def test_without_a_budget_the_rest_of_the_context_is_used(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    post(scripted_server, body(scripted_server.model, max_tokens=None))
    request = scripted_server.backend.requests[-1]
    assert request.sampling.max_tokens == scripted_server.backend.max_model_len - len(
        request.prompt_token_ids
    )


def test_stop_strings_apply_to_final_content_only(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=scripted_server.url) as client:
        out = fold_content(stream_chunks(client, URL, body(scripted_server.model, stop="STOP")))
    assert out["reasoning"] == "Say hi. STOP in reasoning."
    assert out["content"] == "Hi! "
    assert out["finish_reason"] == "stop"
    data = post(scripted_server, body(scripted_server.model, stop=["here", "STOP"])).json()
    assert data["choices"][0]["message"]["content"] == "Hi! "


def test_n_choices_each_get_their_own_parser(scripted_server):
    scripted_server.backend.script = Script(
        [ANSWER, toks("<|channel|>final<|message|>Second choice.<|return|>")], chunk_sizes=(3,)
    )
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, URL, body(scripted_server.model, n=2))
    first, second = fold_content(chunks, 0), fold_content(chunks, 1)
    assert first["content"] == "Hi! STOP here." and first["reasoning"].startswith("Say hi.")
    assert second["content"] == "Second choice." and second["reasoning"] == ""
    data = post(scripted_server, body(scripted_server.model, n=2)).json()
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert data["choices"][1]["message"]["content"] == "Second choice."
    assert data["usage"]["completion_tokens"] == len(ANSWER) + len(
        toks("<|channel|>final<|message|>Second choice.<|return|>")
    )


def test_include_reasoning_false_hides_reasoning(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    message = post(scripted_server, body(scripted_server.model, include_reasoning=False)).json()[
        "choices"
    ][0]["message"]
    assert message["reasoning"] is None and message["reasoning_content"] is None
    assert message["content"] == "Hi! STOP here."


# ---------------------------------------------------------------- models, health, metrics


def test_models_lists_the_served_model(scripted_server):
    with httpx.Client(base_url=scripted_server.url) as client:
        data = client.get("/v1/models").json()
        one = client.get(f"/v1/models/{scripted_server.model}")
        missing = client.get("/v1/models/nope")
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"]] == [scripted_server.model]
    assert data["data"][0]["object"] == "model"
    assert one.json()["id"] == scripted_server.model
    assert_openai_error(missing, 404)


def test_health_and_ready(scripted_server):
    with httpx.Client(base_url=scripted_server.url) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/ready").json()["status"] == "ready"


def test_metrics_expose_requests_latency_tokens_and_in_flight(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    post(scripted_server, body(scripted_server.model))
    post(scripted_server, body("unknown-model"))
    text = httpx.get(f"{scripted_server.url}/metrics").text
    assert (
        'harmony_proxy_requests_total{api="chat.completions",finish_reason="stop",'
        'key="anonymous",status="200"}' in text
    )
    assert (
        'harmony_proxy_requests_total{api="chat.completions",finish_reason="",'
        'key="anonymous",status="404"}' in text
    )
    for name in (
        "harmony_proxy_time_to_first_token_seconds_bucket",
        "harmony_proxy_inter_token_seconds_bucket",
        "harmony_proxy_prompt_tokens_total",
        "harmony_proxy_completion_tokens_total",
        "harmony_proxy_reasoning_tokens_total",
        "harmony_proxy_requests_in_flight",
        "harmony_proxy_parse_recoveries_total",
        "harmony_proxy_client_disconnects_total",
    ):
        assert name in text


def _metric(server, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_inter_token_gaps_count_every_token_after_the_first_once_the_stream_ends(
    scripted_server,
):
    """Streams tally their gaps locally (proxy/server/metrics.py `GapTally`): what reaches
    /metrics must still be one observation per token after the first, nothing lost or twice."""
    scripted_server.backend.script = Script([ANSWER])
    before = _metric(scripted_server, "harmony_proxy_inter_token_seconds_count")
    tokens_before = _metric(scripted_server, "harmony_proxy_completion_tokens_total")
    payload = body(scripted_server.model, stream=True)
    with httpx.stream("POST", f"{scripted_server.url}/v1/chat/completions", json=payload) as r:
        assert r.status_code == 200
        r.read()
    # (The run closes, and flushes, just after the last byte: wait for it.)
    _wait_for_metric(scripted_server, "harmony_proxy_completion_tokens_total", tokens_before)
    tokens = _metric(scripted_server, "harmony_proxy_completion_tokens_total") - tokens_before
    assert tokens == len(ANSWER)
    gaps = _metric(scripted_server, "harmony_proxy_inter_token_seconds_count") - before
    assert gaps == tokens - 1  # the first output's token is the time to first token


def _wait_for_metric(server, name: str, past: float) -> None:
    deadline = time.monotonic() + 10
    while _metric(server, name) <= past and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_long_stream_reaches_the_inter_token_histogram_while_it_runs(
    scripted_server, monkeypatch
):
    """A stream's tally is flushed about once a second while it runs, not only at its end: a
    scrape during a long generation sees its gaps so far."""
    monkeypatch.setattr(GapTally, "FLUSH_SECONDS", 0.0)  # every output past the first flushes
    scripted_server.backend.script = Script([ANSWER], pauses={len(ANSWER) - 1: 2.0})
    before = _metric(scripted_server, "harmony_proxy_inter_token_seconds_count")
    payload = body(scripted_server.model, stream=True)
    with httpx.stream("POST", f"{scripted_server.url}/v1/chat/completions", json=payload) as r:
        lines = r.iter_lines()
        while '"content":"Hi' not in next(lines):
            pass  # the answer has begun: the engine pauses before its last token
        time.sleep(0.5)  # within the pause
        during = _metric(scripted_server, "harmony_proxy_inter_token_seconds_count") - before
        for _ in lines:
            pass
    assert 0 < during < len(ANSWER) - 1


# ---------------------------------------------------------------- auth and CORS


def test_api_key_is_required_on_v1_when_configured(make_server):
    backend = ScriptedBackend(Script([ANSWER]))
    server = make_server(
        ProxyConfig(
            served_model_names=(backend.model_name,),
            api_keys=("sk-test",),
            conversation_date=TEST_DATE,
        ),
        backend,
    )
    with httpx.Client(base_url=server.url) as client:
        missing = client.post(URL, json=body(server.model))
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        right = client.post(
            URL, json=body(server.model), headers={"Authorization": "Bearer sk-test"}
        )
        health = client.get("/health")
    assert assert_openai_error(missing, 401)["code"] == "invalid_api_key"
    assert_openai_error(wrong, 401)
    assert right.status_code == 200
    assert health.status_code == 200


def test_openai_sdk_gets_authentication_error_with_a_wrong_key(make_server):
    server = make_server(
        ProxyConfig(
            served_model_names=("scripted-gpt-oss",),
            api_keys=("sk-test",),
            conversation_date=TEST_DATE,
        )
    )
    client = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_cors_is_off_unless_configured(scripted_server, make_server):
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    off = httpx.options(f"{scripted_server.url}{URL}", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    server = make_server(
        ProxyConfig(
            served_model_names=("scripted-gpt-oss",),
            cors_origins=("https://app.example",),
            conversation_date=TEST_DATE,
        )
    )
    on = httpx.options(f"{server.url}{URL}", headers=preflight)
    assert on.headers["access-control-allow-origin"] == "https://app.example"


# ---------------------------------------------------------------- the OpenAI SDK (scripted engine)


def test_openai_sdk_sync_stream_and_non_stream(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    client = openai.OpenAI(base_url=scripted_server.base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    completion = client.chat.completions.create(model=scripted_server.model, messages=messages)
    assert completion.choices[0].message.content == "Hi! STOP here."
    assert completion.usage.completion_tokens_details.reasoning_tokens > 0
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model=scripted_server.model, messages=messages, stream=True
        )
        if chunk.choices
    ]
    assert "".join(pieces) == "Hi! STOP here."


def test_openai_sdk_async_stream(scripted_server):
    scripted_server.backend.script = Script([ANSWER])

    async def go() -> str:
        client = openai.AsyncOpenAI(base_url=scripted_server.base_url, api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model=scripted_server.model,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            else:
                assert chunk.usage.total_tokens > 0
        await client.close()
        return text

    assert asyncio.run(go()) == "Hi! STOP here."


# ---------------------------------------------------------------- logprobs


def test_logprobs_cover_answer_tokens_only(scripted_server):
    scripted_server.backend.script = Script([ANSWER], chunk_sizes=(3,))
    payload = body(scripted_server.model, logprobs=True, top_logprobs=2)
    data = post(scripted_server, payload).json()
    choice = data["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"] == "Hi! STOP here."
    assert scripted_server.backend.requests[-1].sampling.logprobs == 2
    for entry in entries:
        assert entry["logprob"] == -0.25
        assert bytes(entry["bytes"]).decode() == entry["token"]
        assert [t["logprob"] for t in entry["top_logprobs"]] == [-0.25, -2.0]
    with httpx.Client(base_url=scripted_server.url) as client:
        chunks = stream_chunks(client, URL, payload)
    streamed = [
        e for c in chunks for e in ((c["choices"][0].get("logprobs") or {}).get("content") or [])
    ]
    assert [e["token"] for e in streamed] == [e["token"] for e in entries]


def test_without_logprobs_the_field_is_null(scripted_server):
    scripted_server.backend.script = Script([ANSWER])
    data = post(scripted_server, body(scripted_server.model)).json()
    assert data["choices"][0]["logprobs"] is None
    assert scripted_server.backend.requests[-1].sampling.logprobs is None


# ---------------------------------------------------------------- the edge layer


def test_errors_outside_the_routes_are_openai_shaped_and_carry_the_request_id(scripted_server):
    """The router's own 404/405 and a 413 from the body-size limit pass through the one edge
    layer (proxy/server/edge.py EdgeMiddleware): OpenAI-shaped bodies, the request id echoed."""
    with httpx.Client(base_url=scripted_server.url, timeout=30) as client:
        missing = client.get("/v1/nothing-here", headers={"X-Request-Id": "edge-1"})
        wrong = client.get(URL, headers={"X-Request-Id": "edge-2"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "edge-1"
    assert missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.headers["x-request-id"] == "edge-2"
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_an_unexpected_exception_outside_a_stream_is_a_500_with_the_request_id(scripted_server):
    backend = scripted_server.backend
    original = backend.generate

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    backend.generate = broken
    try:
        with httpx.Client(base_url=scripted_server.url, timeout=30) as client:
            response = client.post(
                URL, json=body(scripted_server.model), headers={"X-Request-Id": "edge-3"}
            )
    finally:
        backend.generate = original
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "edge-3"
    assert response.json()["error"]["type"] == "server_error"
