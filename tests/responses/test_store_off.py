"""`--response-store off`: the server keeps nothing (issue 20, part 2), on the real server.

`store: true` (the default every client sends) is accepted and the Response says
`store: false`; stored ids are unknown (404); `previous_response_id` is a 400 saying why, and
stateless replay (`reasoning.encrypted_content`) works as ever.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.settings import ProxyConfig, Settings
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE, RunningServer

ANSWER = (
    "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"
    "<|channel|>final<|message|>Hello there!<|return|>"
)


@pytest.fixture
def server(make_server: Any, tmp_path: Path) -> RunningServer:
    backend = ScriptedBackend(Script([toks(ANSWER)]))
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        response_store="off",
        reasoning_key_file=str(tmp_path / "reasoning.key"),
    )
    return make_server(config, backend)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_store_true_is_answered_and_nothing_is_kept(server: RunningServer, client) -> None:
    response = client.responses.create(model=server.model, input="Hi", store=True)
    assert response.output_text == "Hello there!"
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def test_a_stream_says_store_false_from_its_first_event(server: RunningServer) -> None:
    with httpx.stream(
        "POST",
        f"{server.base_url}/responses",
        json={"model": server.model, "input": "Hi", "stream": True},
        timeout=30,
    ) as streamed:
        events = [
            json.loads(line.removeprefix("data: "))
            for line in streamed.iter_lines()
            if line.startswith("data: ")
        ]
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert events[0]["response"]["store"] is False and events[-1]["response"]["store"] is False


def test_previous_response_id_is_a_clear_400(server: RunningServer, client) -> None:
    first = client.responses.create(model=server.model, input="Hi")
    for previous in (first.id, "resp_never"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(
                model=server.model, input="Go on", previous_response_id=previous
            )
        body = refused.value.body
        assert body["param"] == "previous_response_id"
        assert (
            "stores no responses" in body["message"] and "--response-store off" in body["message"]
        )


def test_stateless_replay_of_sealed_reasoning_still_works(server: RunningServer, client) -> None:
    first = client.responses.create(
        model=server.model, input="Hi", include=["reasoning.encrypted_content"]
    )
    reasoning = first.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    replay: list[Any] = [
        {"role": "user", "content": "Hi"},
        {
            "type": "reasoning",
            "id": reasoning.id,
            "summary": [],
            "encrypted_content": reasoning.encrypted_content,
        },
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "And then?"},
    ]
    second = client.responses.create(model=server.model, input=replay)
    assert second.status == "completed"


def test_the_flag_reads_off_and_keeps_the_reasoning_key_in_the_data_directory(
    tmp_path: Path,
) -> None:
    settings = Settings.from_sources(
        {"response_store": "off"}, {"XDG_DATA_HOME": str(tmp_path / "data")}
    )
    config = settings.proxy_config("gpt-oss-demo")
    assert config.response_store == "off"
    assert config.reasoning_key_file == str(tmp_path / "data" / "harmony-proxy" / "reasoning.key")
