"""Stored responses belong to the key that made them (issue 20, part 2), on the real server with
two API keys, against SQLite and a real PostgreSQL.

Each key is its own owner (proxy/core/caller.py). For the other key, a response id is exactly an
unknown id: the same status and the same bytes, the id aside, for GET, DELETE, `input_items`
and `previous_response_id`, so nothing tells it the response exists.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE, RunningServer

ALICE, BOB = "sk-alice-" + "a" * 24, "sk-bob-" + "b" * 24
METRICS_KEY = "metrics-" + "m" * 24
ANSWER = (
    "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"
    "<|channel|>final<|message|>Hello there!<|return|>"
)


@dataclass
class Tenants:
    server: RunningServer
    backend: ScriptedBackend

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.base_url, api_key=key, max_retries=0)

    def raw(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def prompt(self) -> str:
        from proxy.core.conversation import load_encoding

        return load_encoding().decode(self.backend.requests[-1].prompt_token_ids)


@pytest.fixture
def tenants(make_server: Any, location: str, tmp_path: Path) -> Tenants:
    """The real server with two keys, storing at `location` (SQLite, then PostgreSQL)."""
    backend = ScriptedBackend(Script([toks(ANSWER)]))
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        api_keys=(ALICE, BOB),
        metrics_key=METRICS_KEY,
        response_store=location,
        reasoning_key_file=str(tmp_path / "reasoning.key"),
    )
    return Tenants(make_server(config, backend), backend)


def unknown_id() -> str:
    return f"resp_{secrets.token_hex(24)}"


def answer(response: httpx.Response, response_id: str) -> tuple[int, str | None, bytes]:
    """What a client learns from an answer, with the id it asked about blanked out."""
    body = response.content.replace(response_id.encode(), b"<ID>")
    return response.status_code, response.headers.get("content-type"), body


def test_another_key_gets_exactly_the_unknown_id_answer(tenants: Tenants) -> None:
    alice = tenants.client(ALICE)
    mine = alice.responses.create(model=tenants.server.model, input="Alice's secret plan")
    other = unknown_id()
    with tenants.raw(BOB) as bob:
        model = tenants.server.model
        requests = [
            ("GET", "/v1/responses/{}", None),
            ("GET", "/v1/responses/{}/input_items", None),
            ("DELETE", "/v1/responses/{}", None),
            ("POST", "/v1/responses", lambda rid: {"model": model, "input": "Hi", **prev(rid)}),
            (
                "POST",
                "/v1/responses",
                lambda rid: {"model": model, "input": "Hi", "stream": True, **prev(rid)},
            ),
        ]
        for method, path, body in requests:
            answers = []
            for rid in (mine.id, other):
                sent = bob.request(method, path.format(rid), json=body(rid) if body else None)
                answers.append(answer(sent, rid))
            assert answers[0] == answers[1], (method, path)
            assert answers[0][0] == 404, answers[0]
            assert b"response_not_found" in answers[0][2]
    # Nothing Bob did touched it.
    assert alice.responses.retrieve(mine.id).output_text == "Hello there!"


def prev(response_id: str) -> dict[str, str]:
    return {"previous_response_id": response_id}


def test_each_key_reads_deletes_and_continues_only_its_own(tenants: Tenants) -> None:
    model = tenants.server.model
    alice, bob = tenants.client(ALICE), tenants.client(BOB)
    a = alice.responses.create(model=model, input="Alice's question")
    b = bob.responses.create(model=model, input="Bob's question")
    for client, mine, theirs in ((alice, a, b), (bob, b, a)):
        assert client.responses.retrieve(mine.id).id == mine.id
        assert len(client.responses.input_items.list(mine.id).data) == 1
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(theirs.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.input_items.list(theirs.id)
        with pytest.raises(openai.NotFoundError) as refused:
            client.responses.create(model=model, input="Go on", previous_response_id=theirs.id)
        assert refused.value.body["param"] == "previous_response_id"
        with pytest.raises(openai.NotFoundError):
            client.responses.delete(theirs.id)
    # The other's prompt never reached the engine through a continuation.
    later = alice.responses.create(model=model, input="And then?", previous_response_id=a.id)
    assert "Alice's question" in tenants.prompt() and "Bob's question" not in tenants.prompt()
    assert later.previous_response_id == a.id
    alice.responses.delete(a.id)
    assert bob.responses.retrieve(b.id).id == b.id


def test_a_client_without_a_key_is_refused_everywhere_but_the_probes(tenants: Tenants) -> None:
    model = tenants.server.model
    mine = tenants.client(ALICE).responses.create(model=model, input="Hi")
    for key in (None, "sk-wrong-" + "c" * 24):
        with tenants.raw(key) as stranger:
            for method, path, body in (
                ("GET", "/v1/models", None),
                ("POST", "/v1/responses", {"model": model, "input": "Hi"}),
                ("GET", f"/v1/responses/{mine.id}", None),
                ("GET", f"/v1/responses/{mine.id}/input_items", None),
                ("DELETE", f"/v1/responses/{mine.id}", None),
                ("POST", "/v1/chat/completions", {"model": model, "messages": []}),
                ("POST", "/v1/messages", {"model": model, "messages": [], "max_tokens": 9}),
            ):
                refused = stranger.request(method, path, json=body)
                assert refused.status_code == 401, (key, method, path)
                error = refused.json()["error"]  # (each API's own shape)
                assert error.get("code") == "invalid_api_key" or error["type"] == (
                    "authentication_error"
                )
            assert stranger.get("/health").status_code == 200
            # /metrics is behind its own key; /ready answers a probe (and names the model).
            assert stranger.get("/metrics").status_code == 401
            assert stranger.get("/ready").json() == {
                "status": "ready",
                "model": tenants.server.model,
            }
    with tenants.raw(METRICS_KEY) as scraper:
        assert scraper.get("/metrics").status_code == 200
    assert tenants.client(ALICE).responses.retrieve(mine.id).id == mine.id


def test_deleting_a_response_deletes_the_later_ones_that_copied_it(tenants: Tenants) -> None:
    """B and C continue A, so each holds a copy of A's items: deleting A deletes them, and
    nothing of A can be read or continued from them afterwards."""
    model = tenants.server.model
    alice = tenants.client(ALICE)
    a = alice.responses.create(model=model, input="The launch code is 0000")
    b = alice.responses.create(model=model, input="Remember it", previous_response_id=a.id)
    c = alice.responses.create(model=model, input="Repeat it", previous_response_id=b.id)
    assert "The launch code is 0000" in tenants.prompt()
    unrelated = alice.responses.create(model=model, input="Something else")
    alice.responses.delete(a.id)
    for gone in (a, b, c):
        with pytest.raises(openai.NotFoundError):
            alice.responses.retrieve(gone.id)
        with pytest.raises(openai.NotFoundError):
            alice.responses.input_items.list(gone.id)
        with pytest.raises(openai.NotFoundError):
            alice.responses.create(model=model, input="Go on", previous_response_id=gone.id)
    assert "0000" not in tenants.prompt()
    assert alice.responses.retrieve(unrelated.id).id == unrelated.id


def test_deleting_a_middle_response_keeps_what_came_before(tenants: Tenants) -> None:
    model = tenants.server.model
    alice = tenants.client(ALICE)
    a = alice.responses.create(model=model, input="First")
    b = alice.responses.create(model=model, input="Second", previous_response_id=a.id)
    c = alice.responses.create(model=model, input="Third", previous_response_id=b.id)
    alice.responses.delete(b.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(c.id)
    again = alice.responses.create(model=model, input="Fourth", previous_response_id=a.id)
    assert "First" in tenants.prompt() and "Second" not in tenants.prompt()
    assert again.status == "completed"
