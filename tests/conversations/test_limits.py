"""The conversation budgets and sealed reasoning, on a real server configured for them: each
refusal a 400 naming the parameter, made before anything is stored or generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.cli import parse_settings
from proxy.server.settings import ProxyConfig
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
        response_store=str(tmp_path / "state" / "responses.db"),
        reasoning_key_file=str(tmp_path / "reasoning.key"),
        conversation_max_bytes=8_000,
        conversation_max_item_bytes=3_000,
    )
    return make_server(config, backend)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def text(size: int) -> dict[str, Any]:
    return {"role": "user", "content": "x" * size}


def test_items_over_the_item_or_conversation_budget_are_refused(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(items=[text(2_000)])
    with pytest.raises(openai.BadRequestError) as big:
        client.conversations.items.create(conversation.id, items=[text(10), text(5_000)])
    assert big.value.body["param"] == "items[1]"
    client.conversations.items.create(conversation.id, items=[text(2_000), text(2_000)])
    with pytest.raises(openai.BadRequestError) as full:
        client.conversations.items.create(conversation.id, items=[text(2_000)])
    assert full.value.body["param"] == "items" and "8000" in full.value.body["message"]
    with pytest.raises(openai.BadRequestError) as alone:
        client.conversations.create(items=[text(2_500)] * 4)
    assert alone.value.body["param"] == "items"
    assert len(client.conversations.items.list(conversation.id).data) == 3


def test_a_response_on_a_full_conversation_is_refused_before_generating(
    server: RunningServer, client: openai.OpenAI
) -> None:
    conversation = client.conversations.create(items=[text(2_500), text(2_500)])
    with pytest.raises(openai.BadRequestError) as big:
        client.responses.create(
            model=server.model, input=[text(4_000)], conversation=conversation.id
        )
    assert big.value.body["param"] == "input[0]"
    # Within the budget with its input; its output takes the conversation past it...
    client.responses.create(model=server.model, input=[text(2_500)], conversation=conversation.id)
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [item.type for item in items][-2:] == ["reasoning", "message"]
    # ...so the next turn is refused, naming the conversation, and the engine never sees it.
    asked = len(server.backend.requests)
    with pytest.raises(openai.BadRequestError) as full:
        client.responses.create(model=server.model, input="Hi", conversation=conversation.id)
    assert full.value.body["param"] == "conversation"
    assert len(server.backend.requests) == asked


def test_reasoning_is_sealed_on_request_and_opens_when_added(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(
        items=[
            {"role": "user", "content": "Hi"},
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "Hmm."}],
            },
        ]
    )
    listed = client.conversations.items.list(
        conversation.id, order="asc", include=["reasoning.encrypted_content"]
    ).data
    sealed = listed[1].encrypted_content
    assert sealed and "Hmm." not in sealed
    plain = client.conversations.items.list(conversation.id, order="asc").data
    assert plain[1].encrypted_content is None
    # Sent back sealed (how a stateless client replays it), it opens to the same text.
    other = client.conversations.create(
        items=[{"type": "reasoning", "summary": [], "encrypted_content": sealed}]
    )
    item = client.conversations.items.list(other.id).data[0]
    assert item.content[0].text == "Hmm."
    with pytest.raises(openai.BadRequestError) as forged:
        client.conversations.create(
            items=[{"type": "reasoning", "summary": [], "encrypted_content": sealed[:-4] + "AAAA"}]
        )
    assert forged.value.body["code"] == "invalid_encrypted_content"


def test_bodies_the_sdk_would_not_send(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as raw:
        made = raw.post("/v1/conversations")  # no body at all: an empty conversation
        assert made.status_code == 200, made.text
        path = f"/v1/conversations/{made.json()['id']}"
        for method, url, body in (
            ("GET", f"{path}/items?limit=many", None),
            ("POST", path, {}),
            ("POST", path, {"metadata": "not a map"}),
            ("POST", f"{path}/items", {}),
            ("POST", "/v1/responses", {"model": server.model, "input": "Hi", "conversation": 7}),
            ("POST", "/v1/responses", {"model": server.model, "input": "Hi", "conversation": {}}),
        ):
            answer = raw.request(method, url, json=body)
            assert answer.status_code == 400, (method, url, body, answer.text)
            assert answer.json()["error"]["type"] == "invalid_request_error"


def test_the_flags_reach_the_config() -> None:
    settings = parse_settings(
        ["serve", "--conversation-max-bytes", "1000", "--conversation-max-item-bytes", "0"],
        environ={},
    )
    config = settings.proxy_config("x")
    assert config.conversation_max_bytes == 1000
    assert config.conversation_max_item_bytes is None
