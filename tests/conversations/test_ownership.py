"""Conversations belong to the key that made them, on the real server with two API keys, against
SQLite and a real PostgreSQL; and `--response-store off`, where there are none.

For the other key a conversation id is exactly an unknown id: the same status and the same
bytes, the id aside, on every route and for `conversation` in /v1/responses.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import toks
from tests.responses.test_ownership import ALICE, ANSWER, BOB, Tenants, answer
from tests.support.server_fixtures import TEST_DATE, RunningServer


def _tenants(make_server: Any, location: str, tmp_path: Path, **config: Any) -> Tenants:
    """The real server with two keys, storing at `location`, with `config`'s other fields."""
    backend = ScriptedBackend(Script([toks(ANSWER)]))
    settings = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        api_keys=(ALICE, BOB),
        response_store=location,
        reasoning_key_file=str(tmp_path / "reasoning.key"),
        **config,
    )
    return Tenants(make_server(settings, backend), backend)


@pytest.fixture
def tenants(make_server: Any, location: str, tmp_path: Path) -> Tenants:
    """The real server with two keys, storing at `location` (SQLite, then PostgreSQL)."""
    return _tenants(make_server, location, tmp_path)


def test_another_key_gets_exactly_the_unknown_id_answer(tenants: Tenants) -> None:
    alice = tenants.client(ALICE)
    mine = alice.conversations.create(
        items=[{"role": "user", "content": "Alice's secret plan"}], metadata={"who": "alice"}
    )
    item = alice.conversations.items.list(mine.id).data[0].id
    other = f"conv_{secrets.token_hex(24)}"
    model = tenants.server.model
    message = {"role": "user", "content": "mine now"}
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/v1/conversations/{}", None),
        ("POST", "/v1/conversations/{}", {"metadata": {"who": "bob"}}),
        ("GET", "/v1/conversations/{}/items", None),
        ("GET", "/v1/conversations/{}/items?limit=1&order=asc&after=" + item, None),
        ("POST", "/v1/conversations/{}/items", {"items": [message]}),
        ("GET", "/v1/conversations/{}/items/" + item, None),
        ("DELETE", "/v1/conversations/{}/items/" + item, None),
        ("DELETE", "/v1/conversations/{}", None),
        ("POST", "/v1/responses", {"model": model, "input": "Hi", "conversation": "{}"}),
        ("POST", "/v1/responses", {"model": model, "input": "Hi", "conversation": {"id": "{}"}}),
        (
            "POST",
            "/v1/responses",
            {"model": model, "input": "Hi", "stream": True, "conversation": "{}"},
        ),
    ]
    with tenants.raw(BOB) as bob:
        for method, path, body in requests:
            answers = []
            for cid in (mine.id, other):
                sent = bob.request(method, path.format(cid), json=_filled(body, cid))
                answers.append(answer(sent, cid))
            assert answers[0] == answers[1], (method, path)
            assert answers[0][0] == 404, answers[0]
            assert b"conversation_not_found" in answers[0][2]
    # Nothing Bob did touched it, and none of his responses reached the engine.
    assert alice.conversations.retrieve(mine.id).metadata == {"who": "alice"}
    assert [i.id for i in alice.conversations.items.list(mine.id).data] == [item]
    assert tenants.backend.requests == []


def test_each_key_continues_only_its_own(tenants: Tenants) -> None:
    model = tenants.server.model
    alice, bob = tenants.client(ALICE), tenants.client(BOB)
    a = alice.conversations.create(items=[{"role": "user", "content": "Alice's question"}])
    b = bob.conversations.create(items=[{"role": "user", "content": "Bob's question"}])
    reply = alice.responses.create(model=model, input="Go on", conversation=a.id)
    assert reply.conversation.id == a.id
    assert "Alice's question" in tenants.prompt() and "Bob's question" not in tenants.prompt()
    with pytest.raises(openai.NotFoundError) as refused:
        alice.responses.create(model=model, input="Go on", conversation=b.id)
    assert refused.value.body["param"] == "conversation"
    assert len(bob.conversations.items.list(b.id).data) == 1
    assert len(alice.conversations.items.list(a.id).data) == 4


def test_with_the_store_off_there_are_no_conversations(make_server: Any, tmp_path: Path) -> None:
    backend = ScriptedBackend(Script([toks(ANSWER)]))
    server: RunningServer = make_server(
        ProxyConfig(
            served_model_names=(backend.model_name,),
            conversation_date=TEST_DATE,
            response_store="off",
            reasoning_key_file=str(tmp_path / "reasoning.key"),
        ),
        backend,
    )
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.conversations.create()
    assert "--response-store off" in refused.value.body["message"]
    unknown = f"conv_{secrets.token_hex(24)}"
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(unknown)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(unknown)
    with pytest.raises(openai.BadRequestError) as param:
        client.responses.create(model=server.model, input="Hi", conversation=unknown)
    assert param.value.body["param"] == "conversation"
    # Without the parameter, responses are served as ever.
    assert client.responses.create(model=server.model, input="Hi").output_text == "Hello there!"
    with httpx.Client(base_url=server.url) as raw:
        assert raw.delete(f"/v1/conversations/{unknown}").status_code == 404


def _filled(body: Any, conversation_id: str) -> Any:
    """`body` with "{}" standing for the conversation id, wherever it is."""
    if body is None:
        return None
    if isinstance(body, dict):
        return {key: _filled(value, conversation_id) for key, value in body.items()}
    return conversation_id if body == "{}" else body


def test_each_key_keeps_at_most_its_quota_of_conversations(
    make_server: Any, location: str, tmp_path: Path
) -> None:
    """`--conversation-max-per-key`: past it a key's create is a 400 (nothing stored), another
    key is not affected, and deleting one makes room."""
    tenants = _tenants(make_server, location, tmp_path, conversation_max_per_key=3)
    alice, bob = tenants.client(ALICE), tenants.client(BOB)
    made = [alice.conversations.create(metadata={"n": str(i)}) for i in range(3)]
    with pytest.raises(openai.BadRequestError) as refused:
        alice.conversations.create(items=[{"role": "user", "content": "one more"}])
    assert refused.value.body["code"] == "limit_exceeded"
    assert "3 conversations" in refused.value.body["message"]
    assert bob.conversations.create().id  # another key's quota is its own
    alice.conversations.delete(made[0].id)
    assert alice.conversations.create().id
