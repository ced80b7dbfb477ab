"""What a stored response may hold (issue 20, part 2), on the real server: the row cap, and
OpenAI's limits on `metadata` and the identifiers stored with a response."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE, RunningServer

ANSWER = (
    "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"
    "<|channel|>final<|message|>Hello there!<|return|>"
)
ROW_CAP = 16 * 1024


@pytest.fixture
def server(make_server: Any, tmp_path: Path) -> RunningServer:
    backend = ScriptedBackend(Script([toks(ANSWER)]))
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        response_store=str(tmp_path / "responses.sqlite3"),
        response_max_row_bytes=ROW_CAP,
        reasoning_key_file=str(tmp_path / "reasoning.key"),
    )
    return make_server(config, backend)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_a_response_over_the_row_cap_is_answered_but_not_kept(server, client) -> None:
    small = client.responses.create(model=server.model, input="Hi")
    assert small.store is True and client.responses.retrieve(small.id).store is True
    big = client.responses.create(model=server.model, input="word " * (ROW_CAP // 4))
    assert big.status == "completed" and big.output_text == "Hello there!"
    assert big.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(big.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=server.model, input="Go on", previous_response_id=big.id)


def test_a_streamed_response_over_the_row_cap_ends_saying_store_false(server) -> None:
    with httpx.stream(
        "POST",
        f"{server.base_url}/responses",
        json={"model": server.model, "input": "word " * (ROW_CAP // 4), "stream": True},
        timeout=30,
    ) as streamed:
        assert streamed.status_code == 200
        events = [
            json.loads(line.removeprefix("data: "))
            for line in streamed.iter_lines()
            if line.startswith("data: ")
        ]
    # Asked for, so announced at first; known too large only once generated.
    assert events[0]["response"]["store"] is True
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["store"] is False


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"key": "v" * 513}}, "metadata.key"),
        ({"user": "u" * 257}, "user"),
        ({"prompt_cache_key": "p" * 257}, "prompt_cache_key"),
        ({"safety_identifier": "s" * 65}, "safety_identifier"),
    ],
)
def test_what_is_stored_beside_a_response_is_bounded(
    server, client, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=server.model, input="Hi", extra_body=extra)
    assert refused.value.body["param"] == param
    assert refused.value.body["code"] == "limit_exceeded"


def test_identifiers_at_their_limits_are_stored_and_echoed(server, client) -> None:
    response = client.responses.create(
        model=server.model,
        input="Hi",
        metadata={f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)},
        user="u" * 256,
        prompt_cache_key="p" * 256,
        safety_identifier="s" * 64,
    )
    stored = client.responses.retrieve(response.id)
    assert len(stored.metadata) == 16 and stored.user == "u" * 256
    assert stored.prompt_cache_key == "p" * 256
