"""Background responses across two proxy replicas sharing one store: a real PostgreSQL server
(and the SQLite file two proxies on one host may share), each replica on its own scripted
engine. The stream resumes on the replica that did not run it; a cancel sent to the other
replica stops the generation in the engine that runs it; another key's id is an unknown id."""

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
from tests.background.support import events_of, metric, read_events, slow, wait_for
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE, RunningServer

ALICE, BOB = "sk-alice-" + "a" * 24, "sk-bob-" + "b" * 24
# An answer long enough to be caught mid-stream (one token per 10 ms).
COUNTING = (
    "<|channel|>analysis<|message|>Count.<|end|><|start|>assistant"
    "<|channel|>final<|message|>" + "one two " * 60 + "done.<|return|>"
)


@dataclass
class Replica:
    server: RunningServer
    backend: ScriptedBackend

    def client(self, key: str = ALICE) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.base_url, api_key=key, max_retries=0)

    def raw(self, key: str = ALICE) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60)


@pytest.fixture
def replicas(make_server: Any, location: str, tmp_path: Path) -> tuple[Replica, Replica]:
    """Two replicas on one store at `location` (SQLite, then PostgreSQL), one reasoning key."""
    out = []
    for _ in range(2):
        backend = ScriptedBackend(Script([toks(COUNTING)], delay=0.01))
        config = ProxyConfig(
            served_model_names=(backend.model_name,),
            conversation_date=TEST_DATE,
            api_keys=(ALICE, BOB),
            response_store=location,
            reasoning_key_file=str(tmp_path / "reasoning.key"),
        )
        out.append(Replica(make_server(config, backend), backend))
    return out[0], out[1]


def test_a_stream_begun_on_one_replica_resumes_on_the_other(replicas):
    a, b = replicas
    body = {"model": a.server.model, "input": "Count", "background": True, "stream": True}
    with a.raw() as http, http.stream("POST", "/v1/responses", json=body) as stream:
        seen = read_events(stream, 8)
    response_id = seen[0]["response"]["id"]
    last = seen[-1]["sequence_number"]
    with b.raw() as http:
        rest = events_of(
            http.get(
                f"/v1/responses/{response_id}", params={"stream": "true", "starting_after": last}
            )
        )
    numbers = [e["sequence_number"] for e in seen + rest]
    assert numbers == list(range(len(numbers)))
    assert rest[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in seen + rest if e["type"] == "response.output_text.delta")
    assert text == "one two " * 60 + "done."
    assert b.client().responses.retrieve(response_id).output_text == text
    assert not b.backend.requests  # (replica B generated nothing)


def test_a_cancel_sent_to_the_other_replica_stops_the_engine_that_runs_it(replicas):
    a, b = replicas
    a.backend.script = slow(0.01)
    created = a.client().responses.create(model=a.server.model, input="Hi", background=True)
    wait_for(lambda: b.client().responses.retrieve(created.id).status == "in_progress")
    assert b.client().responses.cancel(created.id).status == "cancelled"
    wait_for(lambda: a.backend.aborted)
    wait_for(lambda: metric(a.server.url, "harmony_proxy_requests_in_flight") == 0)
    assert a.client().responses.retrieve(created.id).status == "cancelled"
    events = list(a.client().responses.retrieve(created.id, stream=True, starting_after=10_000))
    assert [e.type for e in events] == ["response.cancelled"]


def test_another_key_gets_exactly_the_unknown_id_answer_on_either_replica(replicas):
    a, b = replicas
    a.backend.script = slow(0.01)
    mine = a.client().responses.create(model=a.server.model, input="Hi", background=True)
    other = f"resp_{secrets.token_hex(24)}"
    for replica in (a, b):
        with replica.raw(BOB) as bob:
            for method, path, params in (
                ("GET", "/v1/responses/{}", None),
                ("GET", "/v1/responses/{}", {"stream": "true", "starting_after": 2}),
                ("POST", "/v1/responses/{}/cancel", None),
                ("DELETE", "/v1/responses/{}", None),
            ):
                answers = []
                for rid in (mine.id, other):
                    sent = bob.request(method, path.format(rid), params=params)
                    body = sent.content.replace(rid.encode(), b"<ID>")
                    answers.append((sent.status_code, body))
                assert answers[0] == answers[1], (method, path, params)
                assert answers[0][0] == 404
    # Untouched by Bob.
    assert a.client().responses.cancel(mine.id).status == "cancelled"


def test_a_stopped_replica_fails_its_open_responses_and_the_other_reads_that(
    replicas, background_loop
):
    from tests.support.server_fixtures import stop_server

    a, b = replicas
    a.backend.script = slow(0.01)
    created = a.client().responses.create(model=a.server.model, input="Hi", background=True)
    wait_for(lambda: b.client().responses.retrieve(created.id).status == "in_progress")
    stop_server(background_loop, a.server)
    failed = b.client().responses.retrieve(created.id)
    assert failed.status == "failed"
    assert "stopped before it finished" in failed.error.message
    assert a.backend.aborted
