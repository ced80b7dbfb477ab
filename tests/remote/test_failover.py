"""A replica dies mid-test: nothing that had not started streaming is lost; it comes back.

The conversation's home replica (found through affinity) gets a long stream in flight, is
frozen (SIGSTOP) so a second request routed to it waits for its first token, then killed with
its engine (SIGKILL to the process group). The waiting request must be answered by the other
replica; the stream in flight must end with an error event and `[DONE]`. Restarted on the same
port, the replica is re-admitted by the health checks and serves again.
"""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.remote.helpers import (
    LONG_INSTRUCTIONS,
    LONG_JSON,
    MAX,
    requests_per_replica,
    wait_for,
)

pytestmark = pytest.mark.replicas


def test_a_killed_replica_loses_no_unstarted_request_and_is_readmitted(
    client, pool_server, pool, vllm_replicas
):
    if not all(r.owned for r in vllm_replicas):
        pytest.skip("needs replicas this session started (it kills one)")
    messages = [
        {"role": "system", "content": LONG_INSTRUCTIONS},
        {"role": "user", "content": "List numbers."},
    ]
    before = requests_per_replica(pool)
    client.chat.completions.create(model=pool_server.model, messages=messages, max_tokens=16)
    served = [a - b for a, b in zip(requests_per_replica(pool), before, strict=True)]
    home = served.index(1)
    victim, home_backend = vllm_replicas[home], pool.replicas[home].backend

    body = {
        "model": pool_server.model,
        "messages": messages,
        "max_tokens": 1000,  # the prompt is ~800 tokens of a 2048 context
        "temperature": 0,
        "response_format": LONG_JSON,
        "stream": True,
    }
    url = f"{pool_server.base_url}/chat/completions"
    with (
        httpx.stream("POST", url, json=body, timeout=300) as stream,
        ThreadPoolExecutor(1) as executor,
    ):
        assert stream.status_code == 200, stream.read()
        lines = stream.iter_lines()
        events = 0
        for line in lines:
            events += line.startswith("data:")
            if events == 2:  # the role chunk, then generated text: the victim is streaming
                break
        assert home_backend.in_flight == 1

        victim.signal(signal.SIGSTOP)
        waiting = executor.submit(
            client.chat.completions.create,
            model=pool_server.model,
            messages=messages,
            max_tokens=MAX,
        )
        wait_for(lambda: home_backend.in_flight == 2, "the second request to reach the victim")
        victim.kill()

        answer = waiting.result(timeout=300)  # retried on the other replica
        assert answer.choices[0].finish_reason in ("stop", "length")
        events = [line[5:].strip() for line in lines if line.startswith("data:")]
    try:
        assert events[-1] == "[DONE]"
        payloads = [json.loads(e) for e in events[:-1]]
        errors = [p["error"] for p in payloads if "error" in p]
        assert len(errors) == 1 and errors[0]["code"] == "engine_error"
        finishes = [c["finish_reason"] for p in payloads for c in p.get("choices", [])]
        assert finishes[-1] == "stop"  # the enum has no "error": the event says what failed
        assert pool.replicas[home].errors >= 1
        wait_for(lambda: not pool.replicas[home].admitted, "the victim's ejection")
        assert httpx.get(f"{pool_server.url}/ready").status_code == 200

    finally:  # later tests need both replicas, whatever happened above
        victim.start()  # same port: the pool's health checks find it again
        victim.wait_ready()
    wait_for(lambda: pool.replicas[home].admitted, "the victim's re-admission")
    metrics = httpx.get(f"{pool_server.url}/metrics").text
    assert f'harmony_proxy_replica_healthy{{replica="{victim.url}"}} 1.0' in metrics
    before = requests_per_replica(pool)
    with ThreadPoolExecutor(6) as executor:
        replies = list(
            executor.map(
                lambda i: client.chat.completions.create(
                    model=pool_server.model,
                    messages=[{"role": "user", "content": f"Hello {i}!"}],
                    max_tokens=MAX,
                ),
                range(6),
            )
        )
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in replies)
    assert requests_per_replica(pool)[home] > before[home]
