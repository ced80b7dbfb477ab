"""The openai SDK -> the proxy (uvicorn) -> a ReplicaPool -> two real `vllm serve` replicas.

What must hold through real replicas: the OpenAI surface (streaming and not, tool calls under
`tool_choice: "required"` enforced by the replica's grammar engine), load spread over both
replicas, a conversation sticking to one replica while that replica's own prefix-cache counter
rises, and a client disconnect ending the upstream request (the replica's running gauge at 0).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.remote.helpers import (
    LONG_INSTRUCTIONS,
    LONG_JSON,
    MAX,
    WEATHER,
    ask,
    requests_per_replica,
    wait_for,
)

pytestmark = pytest.mark.replicas


def test_ready_models_and_metrics_reflect_the_pool(pool_server, vllm_replicas):
    assert httpx.get(f"{pool_server.url}/ready").status_code == 200
    models = httpx.get(f"{pool_server.base_url}/models").json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [("gpt-oss-demo", 2048)]
    metrics = httpx.get(f"{pool_server.url}/metrics").text
    for replica in vllm_replicas:
        assert f'harmony_proxy_replica_healthy{{replica="{replica.url}"}} 1.0' in metrics


def test_streaming_and_non_streaming_agree(client, pool_server):
    kwargs = dict(model=pool_server.model, messages=ask("Hello!"), max_tokens=MAX, temperature=0)
    completion = client.chat.completions.create(**kwargs)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert message.content and "<|" not in message.content
    content, reasoning, finish = "", "", None
    for chunk in client.chat.completions.create(**kwargs, stream=True):
        if chunk.choices:
            delta = chunk.choices[0].delta
            content += delta.content or ""
            reasoning += getattr(delta, "reasoning", None) or ""
            finish = chunk.choices[0].finish_reason or finish
    assert (content, finish) == (message.content, completion.choices[0].finish_reason)
    assert reasoning == message.reasoning


def test_tool_choice_required_is_enforced_through_a_replica(client, pool_server):
    completion = client.chat.completions.create(
        model=pool_server.model,
        messages=ask("Tell me a joke."),
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=MAX,
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["location"], str)


def test_concurrent_requests_spread_over_both_replicas(client, pool_server, pool):
    before = requests_per_replica(pool)

    def one(i: int) -> str | None:
        completion = client.chat.completions.create(
            model=pool_server.model, messages=ask(f"Hello number {i}!"), max_tokens=MAX
        )
        return completion.choices[0].finish_reason

    with ThreadPoolExecutor(8) as executor:
        reasons = list(executor.map(one, range(8)))
    assert all(r in ("stop", "length") for r in reasons)
    after = requests_per_replica(pool)
    served = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(served) == 8 and all(n > 0 for n in served), served


def test_a_conversation_sticks_to_one_replica_whose_prefix_cache_hits(
    client, pool_server, pool, vllm_replicas
):
    messages = [{"role": "system", "content": LONG_INSTRUCTIONS}]
    replicas_used, cached = [], []
    hits_before = [r.metrics()["vllm:prefix_cache_hits_total"] for r in vllm_replicas]
    for turn in ("Hello!", "What is the weather like?", "Thanks, and tomorrow?"):
        messages.append({"role": "user", "content": turn})
        before = requests_per_replica(pool)
        completion = client.chat.completions.create(
            model=pool_server.model, messages=messages, max_tokens=MAX, temperature=0
        )
        after = requests_per_replica(pool)
        replicas_used.append([a - b for a, b in zip(after, before, strict=True)].index(1))
        details = completion.usage.prompt_tokens_details
        cached.append(details.cached_tokens if details else 0)
        messages.append({"role": "assistant", "content": completion.choices[0].message.content})
    assert len(set(replicas_used)) == 1, replicas_used
    home = replicas_used[0]
    assert pool.replicas[home].affinity_hits >= 2
    assert cached[1] > 0 and cached[2] > 0, cached
    hits_after = vllm_replicas[home].metrics()["vllm:prefix_cache_hits_total"]
    assert hits_after > hits_before[home]


def test_client_disconnect_ends_the_upstream_request(pool_server, pool, vllm_replicas):
    def finished() -> float:  # vLLM counts completed requests here, aborted ones nowhere
        return sum(
            v
            for r in vllm_replicas
            for k, v in r.metrics().items()
            if k.startswith("vllm:request_success_total:")
        )

    finished_before = finished()
    body = {
        "model": pool_server.model,
        "messages": ask("List numbers."),
        "max_tokens": 1500,
        "temperature": 0,
        "response_format": LONG_JSON,  # hundreds of tokens: still generating when we leave
        "stream": True,
    }
    url = f"{pool_server.base_url}/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=300) as response:
        assert response.status_code == 200
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data:")
            if events >= 3:
                break  # leaving the block closes the connection mid-stream
    wait_for(lambda: sum(r.backend.in_flight for r in pool.replicas) == 0, "the pool idle")

    def replicas_idle() -> bool:
        samples = [r.metrics() for r in vllm_replicas]
        busy = sum(s["vllm:num_requests_running"] + s["vllm:num_requests_waiting"] for s in samples)
        return busy == 0

    wait_for(replicas_idle, "the replicas' running gauges at 0")
    assert finished() == finished_before  # ended by the abort, not run to completion
