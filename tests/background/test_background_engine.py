"""Background responses on the real vLLM engine serving the demo model, through the openai SDK:
polled to completion, and cancelled mid-generation with the engine's own scheduler counts (not
only the proxy's bookkeeping) back to zero."""

from __future__ import annotations

import openai
import pytest

from proxy.server.settings import ProxyConfig
from tests.background.support import metric, wait_for
from tests.support.server_fixtures import TEST_DATE

pytestmark = pytest.mark.engine


@pytest.fixture
def server(make_server, vllm_backend):
    config = ProxyConfig(served_model_names=(vllm_backend.model_name,), conversation_date=TEST_DATE)
    return make_server(config, vllm_backend, engine_stats=True)


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def test_a_background_response_is_polled_to_completion_on_the_engine(server, client):
    created = client.responses.create(
        model=server.model, input="What is 2 + 3?", background=True, max_output_tokens=64
    )
    assert created.status == "queued"
    done = wait_for(
        lambda: (
            (r := client.responses.retrieve(created.id)).status not in ("queued", "in_progress")
            and r
        ),
        timeout=300,
        period=0.2,
    )
    assert done.status in ("completed", "incomplete")
    assert done.background is True
    assert done.usage is not None and done.usage.output_tokens > 0
    assert done.output  # what the model wrote, reasoning and (if it got there) an answer
    # Its whole stream is kept, numbered from 0 and closed by the event of its status.
    events = list(client.responses.retrieve(created.id, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == f"response.{done.status}"


def test_cancel_mid_generation_frees_the_engine(server, client, vllm_backend):
    created = client.responses.create(
        model=server.model,
        input="Tell me a very long story about a lighthouse keeper.",
        background=True,
        max_output_tokens=1500,
        temperature=1.0,
    )
    # Generating: the engine holds the request.
    wait_for(lambda: vllm_backend.num_unfinished_requests() > 0, timeout=300, period=0.1)
    wait_for(lambda: client.responses.retrieve(created.id).status == "in_progress", timeout=60)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    wait_for(lambda: vllm_backend.num_unfinished_requests() == 0, timeout=60)
    wait_for(
        lambda: (
            metric(server.url, "vllm:num_requests_running") == 0
            and metric(server.url, "vllm:num_requests_waiting") == 0
        ),
        timeout=60,
        period=0.2,
    )
    assert metric(server.url, "harmony_proxy_requests_in_flight") == 0
    assert client.responses.retrieve(created.id).status == "cancelled"
