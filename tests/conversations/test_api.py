"""/v1/conversations and `conversation` in /v1/responses, on the real server through the official
openai SDK (and raw HTTP for what the SDK will not send), on scripted model output.

The scripted backend records every prompt, so "the response continued the conversation" is
checked on the rendered Harmony prompt the engine received, not on what a model says.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
import openai
import pytest

from proxy.backends.scripted import Script
from proxy.core.conversation import load_encoding
from tests.proxy.helpers import toks

ANSWER = (
    "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"
    "<|channel|>final<|message|>Hello there!<|return|>"
)
CALL = (
    "<|channel|>analysis<|message|>Weather.<|end|><|start|>assistant to=functions.get_weather"
    '<|channel|>commentary <|constrain|>json<|message|>{"city":"Paris"}<|call|>'
)
JSON = {"content-type": "application/json"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def client(scripted_server: Any) -> openai.OpenAI:
    scripted_server.backend.script = Script([toks(ANSWER)])
    return openai.OpenAI(base_url=scripted_server.base_url, api_key="unused", max_retries=0)


@pytest.fixture
def raw(scripted_server: Any) -> httpx.Client:
    with httpx.Client(base_url=scripted_server.url, timeout=30) as http:
        yield http


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def prompt(server: Any) -> str:
    return load_encoding().decode(server.backend.requests[-1].prompt_token_ids)


def all_items(client: openai.OpenAI, conversation_id: str) -> list[Any]:
    return list(client.conversations.items.list(conversation_id, order="asc", limit=3))


def test_create_retrieve_update_delete(client: openai.OpenAI) -> None:
    made = client.conversations.create(items=[user("Hi")], metadata={"topic": "demo"})
    assert made.id.startswith("conv_") and made.object == "conversation"
    assert made.metadata == {"topic": "demo"}
    assert client.conversations.retrieve(made.id).created_at == made.created_at
    updated = client.conversations.update(made.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"}
    assert client.conversations.retrieve(made.id).metadata == {"topic": "other"}
    deleted = client.conversations.delete(made.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (made.id, "conversation.deleted", True)
    with pytest.raises(openai.NotFoundError) as gone:
        client.conversations.retrieve(made.id)
    assert gone.value.body["code"] == "conversation_not_found"
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(made.id)


def test_items_are_added_listed_in_pages_and_deleted(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    added = client.conversations.items.create(
        conversation.id, items=[user(f"message {i}") for i in range(7)]
    )
    ids = [item.id for item in added.data]
    assert len(ids) == 7 and added.first_id == ids[0] and added.last_id == ids[-1]
    # The SDK's auto-pagination follows `after` over pages of 3, in both orders.
    assert [item.id for item in all_items(client, conversation.id)] == ids
    newest = client.conversations.items.list(conversation.id, limit=2)
    assert [item.id for item in newest.data] == ids[:-3:-1] and newest.has_more
    last = client.conversations.items.list(conversation.id, after=ids[1], order="desc")
    assert [item.id for item in last.data] == ids[:1] and not last.has_more
    one = client.conversations.items.retrieve(ids[3], conversation_id=conversation.id)
    assert one.type == "message" and one.content[0].text == "message 3"
    left = client.conversations.items.delete(ids[3], conversation_id=conversation.id)
    assert left.id == conversation.id and left.object == "conversation"
    assert ids[3] not in [item.id for item in all_items(client, conversation.id)]
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.items.retrieve(ids[3], conversation_id=conversation.id)
    assert missing.value.body["code"] == "item_not_found"


def test_a_response_continues_the_conversation_and_is_appended(
    scripted_server: Any, client: openai.OpenAI
) -> None:
    conversation = client.conversations.create(items=[user("My name is Ada.")])
    first = client.responses.create(
        model=scripted_server.model, input="What is my name?", conversation=conversation.id
    )
    assert first.conversation is not None and first.conversation.id == conversation.id
    assert "My name is Ada." in prompt(scripted_server)
    items = all_items(client, conversation.id)
    assert [item.type for item in items] == ["message", "message", "reasoning", "message"]
    assert items[1].content[0].text == "What is my name?"
    assert [item.id for item in items[2:]] == [item.id for item in first.output]
    # The dict form, streamed: the history now holds the first turn.
    with client.responses.stream(
        model=scripted_server.model, input="And again?", conversation={"id": conversation.id}
    ) as stream:
        final = stream.get_final_response()
    assert final.conversation.id == conversation.id
    text = prompt(scripted_server)
    assert text.index("My name is Ada.") < text.index("What is my name?") < text.index("And again?")
    assert "Hello there!" in text
    assert len(all_items(client, conversation.id)) == 7


def test_a_tool_call_and_its_output_carry_over(scripted_server: Any, client: openai.OpenAI) -> None:
    scripted_server.backend.script = Script([toks(CALL)])
    conversation = client.conversations.create()
    called = client.responses.create(
        model=scripted_server.model,
        input="Weather in Paris?",
        tools=[WEATHER],
        conversation=conversation.id,
    )
    call = called.output[-1]
    assert call.type == "function_call"
    scripted_server.backend.script = Script([toks(ANSWER)])
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}
    client.responses.create(
        model=scripted_server.model, input=[output], tools=[WEATHER], conversation=conversation.id
    )
    assert "18C" in prompt(scripted_server) and '{"city":"Paris"}' in prompt(scripted_server)
    # An output whose call the conversation does not hold is refused, naming it.
    with pytest.raises(openai.BadRequestError) as orphan:
        client.conversations.items.create(
            conversation.id,
            items=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
        )
    assert orphan.value.body["param"] == "items[0].call_id"
    # The call cannot be deleted while its output is there (the conversation must render).
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.delete(call.id, conversation_id=conversation.id)


def test_conversation_with_previous_response_id_is_openais_400(
    scripted_server: Any, client: openai.OpenAI
) -> None:
    conversation = client.conversations.create()
    earlier = client.responses.create(model=scripted_server.model, input="Hi")
    with pytest.raises(openai.BadRequestError) as both:
        client.responses.create(
            model=scripted_server.model,
            input="Hi",
            conversation=conversation.id,
            previous_response_id=earlier.id,
        )
    assert both.value.body["code"] == "mutually_exclusive_parameters"
    assert "'previous_response_id' or 'conversation'" in both.value.body["message"]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.create(
            model=scripted_server.model, input="Hi", conversation="conv_" + "0" * 48
        )
    assert unknown.value.body["param"] == "conversation"


def test_two_responses_at_once_both_land(scripted_server: Any) -> None:
    """Both read the same history and finish together: neither turn is lost."""
    scripted_server.backend.script = Script([toks(ANSWER)], delay=0.01)

    async def main() -> tuple[str, list[Any]]:
        async with openai.AsyncOpenAI(
            base_url=scripted_server.base_url, api_key="unused", max_retries=0
        ) as client:
            conversation = await client.conversations.create()
            await asyncio.gather(
                *(
                    client.responses.create(
                        model=scripted_server.model, input=f"turn {i}", conversation=conversation.id
                    )
                    for i in range(4)
                )
            )
            items = [
                item async for item in client.conversations.items.list(conversation.id, order="asc")
            ]
            return conversation.id, items

    _, items = asyncio.run(main())
    assert len(items) == 4 * 3
    asked = sorted(item.content[0].text for item in items if getattr(item, "role", "") == "user")
    assert asked == [f"turn {i}" for i in range(4)]
    assert len({item.id for item in items}) == len(items)


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([user("x")] * 21, "items"),
        ([{"type": "image_generation_call", "id": "ig_1"}], "items[0].type"),
        ([{"type": "message", "role": "wizard", "content": "x"}], "items[0].role"),
        ([user("a") | {"id": "msg_same"}, user("b") | {"id": "msg_same"}], "items[1].id"),
        ([user("\ud800")], "items.0.content"),
        ("not a list", "items"),
    ],
)
def test_hostile_items_are_400s_naming_the_parameter(
    raw: httpx.Client, items: Any, param: str
) -> None:
    conversation = raw.post("/v1/conversations", json={}).json()["id"]
    for path in ("/v1/conversations", f"/v1/conversations/{conversation}/items"):
        # (escaped JSON: a lone surrogate can only arrive as `\ud800`)
        answer = raw.post(path, content=json.dumps({"items": items}), headers=JSON)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param or error["param"].startswith(param.split(".")[0])
    assert raw.get(f"/v1/conversations/{conversation}/items").json()["data"] == []


def test_metadata_limits_are_the_responses_ones(raw: httpx.Client) -> None:
    too_many = {f"k{i}": "v" for i in range(17)}
    for body in ({"metadata": too_many}, {"metadata": {"k": "v" * 513}}, {"metadata": {"k": 1}}):
        answer = raw.post("/v1/conversations", json=body)
        assert answer.status_code == 400 and answer.json()["error"]["param"].startswith("metadata")


def test_list_parameters_are_checked(raw: httpx.Client) -> None:
    conversation = raw.post("/v1/conversations", json={"items": [user("x")]}).json()["id"]
    path = f"/v1/conversations/{conversation}/items"
    for query, param in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "msg_nope"}, "after"),
        ({"include": "everything"}, "include"),
    ):
        answer = raw.get(path, params=query)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, query


def test_unknown_ids_are_404s_everywhere(raw: httpx.Client) -> None:
    unknown = f"conv_{secrets.token_hex(24)}"
    for method, path in (
        ("GET", f"/v1/conversations/{unknown}"),
        ("POST", f"/v1/conversations/{unknown}"),
        ("DELETE", f"/v1/conversations/{unknown}"),
        ("GET", f"/v1/conversations/{unknown}/items"),
        ("POST", f"/v1/conversations/{unknown}/items"),
        ("GET", f"/v1/conversations/{unknown}/items/msg_1"),
        ("DELETE", f"/v1/conversations/{unknown}/items/msg_1"),
    ):
        body = {"metadata": {}, "items": [user("x")]} if method == "POST" else None
        answer = raw.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "conversation_not_found"


def test_the_agents_sdk_session_surface(scripted_server: Any) -> None:
    """Every call `OpenAIConversationsSession` makes: add (in chunks of 20), read all or the
    last few, pop the newest, clear (delete the conversation)."""
    agents = pytest.importorskip("agents")

    async def main() -> None:
        async with openai.AsyncOpenAI(
            base_url=scripted_server.base_url, api_key="unused", max_retries=0
        ) as client:
            session = agents.OpenAIConversationsSession(openai_client=client)
            await session.add_items([user(f"note {i}") for i in range(45)])
            every = await session.get_items()
            assert [item["content"][0]["text"] for item in every] == [
                f"note {i}" for i in range(45)
            ]
            assert [item["content"][0]["text"] for item in await session.get_items(limit=2)] == [
                "note 43",
                "note 44",
            ]
            popped = await session.pop_item()
            assert popped is not None and popped["content"][0]["text"] == "note 44"
            assert len(await session.get_items()) == 44
            conversation_id = session.session_id
            await session.clear_session()
            with pytest.raises(openai.NotFoundError):
                await client.conversations.retrieve(conversation_id)

    asyncio.run(main())


def test_store_false_keeps_no_response_but_the_conversation_grows(
    scripted_server: Any, client: openai.OpenAI
) -> None:
    """`store` governs the Response object; the conversation takes the turn either way."""
    conversation = client.conversations.create()
    reply = client.responses.create(
        model=scripted_server.model, input="Hi", conversation=conversation.id, store=False
    )
    assert reply.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(reply.id)
    assert len(all_items(client, conversation.id)) == 3
