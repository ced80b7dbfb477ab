"""Reliability on the real engine (the session's demo model): vLLM's engine statistics on
/metrics, and generations of clients that leave at random points aborted in the engine itself
(its scheduler's running/waiting counts, not only the front-end's bookkeeping)."""

from __future__ import annotations

import random
import time

import httpx
import pytest

from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import body
from tests.support.server_fixtures import TEST_DATE

pytestmark = pytest.mark.engine
URL = "/v1/chat/completions"


def metrics(server) -> dict[str, float]:
    out = {}
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name.split("{")[0]] = out.get(name.split("{")[0], 0.0) + float(value)
    return out


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def stats_server(make_server, vllm_backend):
    config = ProxyConfig(served_model_names=(vllm_backend.model_name,), conversation_date=TEST_DATE)
    return make_server(config, vllm_backend, engine_stats=True)


def test_engine_statistics_are_on_metrics_beside_ours(stats_server):
    with httpx.Client(base_url=stats_server.url, timeout=120) as client:
        assert client.post(URL, json=body(stats_server.model, max_tokens=8)).status_code == 200
    seen = metrics(stats_server)
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:num_preemptions_total",
        "harmony_proxy_requests_total",
    ):
        assert name in seen, name


def test_vllm_inter_token_latencies_are_all_on_metrics(stats_server, vllm_backend):
    """The engine's stat logger adds a step's inter-token latencies at once
    (proxy/backends/vllm_stats.py): one per engine output after the first, as vLLM's own
    logger does, so a request of n completion tokens (one per step here) adds n - 1."""
    wait_for(lambda: vllm_backend.num_unfinished_requests() == 0)
    name = "vllm:inter_token_latency_seconds"
    before = metrics(stats_server)
    with httpx.Client(base_url=stats_server.url, timeout=120) as client:
        response = client.post(URL, json=body(stats_server.model, max_tokens=24))
    assert response.status_code == 200
    tokens = response.json()["usage"]["completion_tokens"]
    after = metrics(stats_server)
    assert tokens >= 2
    assert after[name + "_count"] - before.get(name + "_count", 0) == tokens - 1
    assert after[name + "_sum"] > before.get(name + "_sum", 0)
    # Every latency is in a bucket: the +Inf bucket (le) is the count.
    lines = httpx.get(f"{stats_server.url}/metrics").text.splitlines()
    top = sum(
        float(x.rpartition(" ")[2])
        for x in lines
        if x.startswith(name + "_bucket") and 'le="+Inf"' in x
    )
    assert top == after[name + "_count"]


def test_clients_leaving_at_random_points_leave_no_generation_in_the_engine(
    stats_server, vllm_backend
):
    rng = random.Random(9)
    with httpx.Client(base_url=stats_server.url, timeout=120) as client:
        for _ in range(6):
            payload = body(stats_server.model, "Tell me a long story.", stream=True)
            payload.update(max_tokens=1500, temperature=1.0, seed=rng.randrange(1000))
            with client.stream("POST", URL, json=payload) as response:
                lines = response.iter_lines()
                for _ in range(rng.randrange(1, 30)):
                    if next(lines, None) is None:
                        break
    wait_for(lambda: vllm_backend.num_unfinished_requests() == 0)
    # The engine process's own scheduler counts (published with its statistics).
    wait_for(
        lambda: (
            (seen := metrics(stats_server))["vllm:num_requests_running"] == 0
            and seen["vllm:num_requests_waiting"] == 0
        )
    )
    assert metrics(stats_server)["harmony_proxy_requests_in_flight"] == 0


def test_vllm_sampling_extensions_are_accepted_by_the_engine(stats_server):
    payload = body(stats_server.model, max_tokens=8, top_k=20, min_p=0.05, repetition_penalty=1.2)
    payload["chat_template_kwargs"] = {"reasoning_effort": "low"}
    with httpx.Client(base_url=stats_server.url, timeout=120) as client:
        response = client.post(URL, json=payload)
    assert response.status_code == 200, response.text
