"""Background responses on the real server with the openai SDK and raw HTTP, over a scripted
engine (paced, deterministic generations to poll, stream, resume and cancel) and the default
SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import openai
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.server.settings import ProxyConfig
from tests.background.support import (
    ANSWER,
    TERMINAL,
    events_of,
    metric,
    read_events,
    slow,
    wait_for,
)
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE, RunningServer


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(Script([toks(ANSWER)]))


@pytest.fixture
def server(make_server: Any, backend: ScriptedBackend) -> RunningServer:
    config = ProxyConfig(served_model_names=(backend.model_name,), conversation_date=TEST_DATE)
    return make_server(config, backend)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


@pytest.fixture
def raw(server: RunningServer) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def poll(client: openai.OpenAI, response_id: str) -> Any:
    return wait_for(
        lambda: (
            (r := client.responses.retrieve(response_id)).status not in ("queued", "in_progress")
            and r
        )
    )


def test_a_background_response_is_queued_at_once_then_polled_to_completion(server, client):
    created = client.responses.create(model=server.model, input="Hi", background=True)
    assert created.status == "queued"
    assert created.background is True
    done = poll(client, created.id)
    assert done.status == "completed"
    assert done.background is True
    assert done.output_text == "Hello there!"
    assert done.usage is not None and done.usage.output_tokens > 0
    # Stored like any response: a later turn continues from it.
    server.backend.script = Script([toks(ANSWER)])
    follow = client.responses.create(model=server.model, input="More", previous_response_id=done.id)
    assert follow.status == "completed"


def test_background_needs_store(server, client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=server.model, input="Hi", background=True, store=False)
    assert caught.value.body["param"] == "background"
    assert "store" in caught.value.body["message"]


def test_background_is_refused_when_the_server_stores_nothing(make_server, backend):
    config = ProxyConfig(
        served_model_names=(backend.model_name,), conversation_date=TEST_DATE, response_store="off"
    )
    off = make_server(config, backend)
    answer = httpx.post(
        f"{off.url}/v1/responses",
        json={"model": off.model, "input": "Hi", "background": True},
        timeout=30,
    )
    assert answer.status_code == 400
    assert "--response-store off" in answer.json()["error"]["message"]


def test_a_bad_background_request_is_answered_like_a_synchronous_one(server, raw):
    for body, status in (
        ({"model": server.model, "input": "Hi", "include": ["nope"]}, 400),
        ({"model": "no-such-model", "input": "Hi"}, 404),
        ({"model": server.model, "input": "Hi", "previous_response_id": "resp_x"}, 404),
    ):
        answer = raw.post("/v1/responses", json={**body, "background": True})
        assert answer.status_code == status, answer.text
    # Nothing of them is left running or counted against the caps.
    assert metric(server.url, "harmony_proxy_requests_in_flight") == 0


def test_a_streamed_background_create_sends_every_event_in_order(server, raw):
    answer = raw.post(
        "/v1/responses",
        json={"model": server.model, "input": "Hi", "background": True, "stream": True},
    )
    events = events_of(answer)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[0]["response"]["background"] is True
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output_text"] == "Hello there!"


def test_resume_from_a_sequence_number_and_past_the_end(server, client, raw):
    created = client.responses.create(model=server.model, input="Hi", background=True)
    poll(client, created.id)
    whole = events_of(raw.get(f"/v1/responses/{created.id}", params={"stream": "true"}))
    assert whole[-1]["type"] == "response.completed"
    tail = events_of(
        raw.get(f"/v1/responses/{created.id}", params={"stream": "true", "starting_after": 3})
    )
    assert tail == whole[4:]
    # The SDK's own resume.
    resumed = list(client.responses.retrieve(created.id, stream=True, starting_after=3))
    assert [e.sequence_number for e in resumed] == [e["sequence_number"] for e in whole[4:]]
    past = events_of(
        raw.get(f"/v1/responses/{created.id}", params={"stream": "true", "starting_after": 10_000})
    )
    assert past == [whole[-1]]


def test_resuming_a_response_not_made_in_the_background_is_a_400(server, client, raw):
    plain = client.responses.create(model=server.model, input="Hi")
    answer = raw.get(f"/v1/responses/{plain.id}", params={"stream": "true"})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "stream"
    unknown = raw.get("/v1/responses/resp_nope", params={"stream": "true"})
    assert unknown.status_code == 404


def test_cancel_stops_the_generation_in_the_engine(server, client, backend):
    backend.script = slow()
    created = client.responses.create(model=server.model, input="Hi", background=True)
    wait_for(lambda: client.responses.retrieve(created.id).status == "in_progress")
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    wait_for(lambda: backend.aborted)
    wait_for(lambda: metric(server.url, "harmony_proxy_requests_in_flight") == 0)
    assert client.responses.retrieve(created.id).status == "cancelled"
    # Again: the same answer (idempotent).
    assert client.responses.cancel(created.id).status == "cancelled"
    # Its stream ends with the closing event.
    events = list(client.responses.retrieve(created.id, stream=True))
    assert events[-1].type == "response.cancelled"


def test_cancel_refuses_finished_and_foreground_responses(server, client, raw):
    created = client.responses.create(model=server.model, input="Hi", background=True)
    poll(client, created.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.cancel(created.id)
    assert caught.value.body["message"] == "Cannot cancel a completed response."
    server.backend.script = Script([toks(ANSWER)])
    plain = client.responses.create(model=server.model, input="Hi")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.cancel(plain.id)
    assert "background" in caught.value.body["message"]
    assert raw.post("/v1/responses/resp_nope/cancel").status_code == 404


def test_a_background_response_survives_its_client_leaving(server, client, raw, backend):
    backend.script = Script([toks(ANSWER)], delay=0.05)
    body = {"model": server.model, "input": "Hi", "background": True, "stream": True}
    with raw.stream("POST", "/v1/responses", json=body) as stream:
        first = read_events(stream, 3)
    response_id = first[0]["response"]["id"]
    done = poll(client, response_id)
    assert done.status == "completed"
    assert done.output_text == "Hello there!"
    assert not backend.aborted


def test_a_response_whose_runner_died_is_marked_failed(make_server, backend, background_loop):
    """Its runner stops renewing its lease (as when its process is killed: here its task is
    cancelled, so no status is written): once the lease has lapsed, the next reader fails it."""
    backend.script = slow()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        background_lease_seconds=0.6,
    )
    server = make_server(config, backend)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    created = client.responses.create(model=server.model, input="Hi", background=True)
    wait_for(lambda: client.responses.retrieve(created.id).status == "in_progress")
    runner = server.app.state.background._running[created.id]
    background_loop.run(_kill(runner.task))
    assert client.responses.retrieve(created.id).status == "in_progress"  # (lease not over yet)
    failed = wait_for(lambda: (r := client.responses.retrieve(created.id)).status == "failed" and r)
    assert "stopped before it finished" in failed.error.message
    events = list(client.responses.retrieve(created.id, stream=True, starting_after=10_000))
    assert [e.type for e in events] == ["response.failed"]


async def _kill(task: Any) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def test_the_number_running_at_once_is_capped(make_server, backend):
    backend.script = slow()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        background_max_per_owner=1,
    )
    capped = make_server(config, backend)
    client = openai.OpenAI(base_url=capped.base_url, api_key="unused", max_retries=0)
    first = client.responses.create(model=capped.model, input="Hi", background=True)
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model=capped.model, input="Hi", background=True)
    assert "at most 1" in caught.value.body["message"]
    client.responses.cancel(first.id)
    second = client.responses.create(model=capped.model, input="Hi", background=True)
    assert client.responses.cancel(second.id).status == "cancelled"


def test_deleting_a_background_response_stops_it(server, client, backend):
    backend.script = slow()
    created = client.responses.create(model=server.model, input="Hi", background=True)
    wait_for(lambda: client.responses.retrieve(created.id).status == "in_progress")
    client.responses.delete(created.id)
    wait_for(lambda: backend.aborted)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_terminal_events_close_every_stream(server, raw):
    answer = raw.post(
        "/v1/responses",
        json={"model": server.model, "input": "Hi", "background": True, "stream": True},
    )
    kinds = [e["type"] for e in events_of(answer)]
    assert sum(kind in TERMINAL for kind in kinds) == 1


def test_a_response_waiting_for_admission_is_queued_and_cancels_without_reaching_the_engine(
    make_server, backend
):
    backend.script = slow()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        max_concurrent_requests=1,
        max_queued_requests=4,
    )
    limited = make_server(config, backend)
    client = openai.OpenAI(base_url=limited.base_url, api_key="unused", max_retries=0)
    running = client.responses.create(model=limited.model, input="Hi", background=True)
    wait_for(lambda: client.responses.retrieve(running.id).status == "in_progress")
    waiting = client.responses.create(model=limited.model, input="Hi", background=True)
    assert client.responses.retrieve(waiting.id).status == "queued"
    assert client.responses.cancel(waiting.id).status == "cancelled"
    assert client.responses.cancel(running.id).status == "cancelled"
    wait_for(lambda: metric(limited.url, "harmony_proxy_requests_in_flight") == 0)
    wait_for(lambda: metric(limited.url, "harmony_proxy_requests_queued") == 0)
    assert len(backend.requests) == 1  # the cancelled one never reached the engine


def test_an_event_log_over_the_row_cap_fails_the_response(make_server, backend):
    backend.script = slow(0.005)
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        response_max_row_bytes=20_000,
    )
    capped = make_server(config, backend)
    client = openai.OpenAI(base_url=capped.base_url, api_key="unused", max_retries=0)
    created = client.responses.create(model=capped.model, input="Hi", background=True)
    failed = wait_for(lambda: (r := client.responses.retrieve(created.id)).status == "failed" and r)
    assert "20000 bytes" in failed.error.message
    wait_for(lambda: backend.aborted)
    wait_for(lambda: metric(capped.url, "harmony_proxy_requests_in_flight") == 0)


def test_a_replica_starting_up_fails_the_responses_of_a_dead_one(
    make_server, backend, background_loop, tmp_path
):
    store = str(tmp_path / "shared.sqlite3")
    backend.script = slow()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        response_store=store,
        reasoning_key_file=str(tmp_path / "reasoning.key"),
        background_lease_seconds=0.5,
    )
    dying = make_server(config, backend)
    client = openai.OpenAI(base_url=dying.base_url, api_key="unused", max_retries=0)
    created = client.responses.create(model=dying.model, input="Hi", background=True)
    wait_for(lambda: client.responses.retrieve(created.id).status == "in_progress")
    background_loop.run(_kill(dying.app.state.background._running[created.id].task))
    time.sleep(0.6)
    starting = make_server(config, ScriptedBackend())
    # Failed by the start-up sweep, before anyone asked.
    row = starting.app.state.background.log.get(created.id, "anonymous")
    assert row.status == "failed"
    assert "stopped before it finished" in row.response["error"]["message"]


def test_a_drain_gives_background_responses_its_grace_then_fails_them(
    make_server, backend, background_loop
):
    from proxy.server.lifecycle import Lifecycle

    backend.script = slow()
    lifecycle = Lifecycle(grace_seconds=0.5, farewell_seconds=1.0)
    draining = make_server(None, backend, lifecycle=lifecycle)
    client = openai.OpenAI(base_url=draining.base_url, api_key="unused", max_retries=0)
    created = client.responses.create(model=draining.model, input="Hi", background=True)
    wait_for(lambda: client.responses.retrieve(created.id).status == "in_progress")

    async def drain() -> None:
        lifecycle.begin_drain()

    background_loop.run(drain())
    with pytest.raises(openai.APIStatusError) as refused:
        client.responses.create(model=draining.model, input="Hi", background=True)
    assert refused.value.status_code == 503
    assert client.responses.retrieve(created.id).status == "in_progress"  # (in its grace)
    failed = wait_for(lambda: (r := client.responses.retrieve(created.id)).status == "failed" and r)
    assert failed.error is not None
    wait_for(lambda: backend.aborted)


def test_a_background_response_in_a_conversation_adds_its_turn_when_it_finishes(server, client):
    chat = client.conversations.create()
    created = client.responses.create(
        model=server.model, input="Hi", background=True, conversation=chat.id
    )
    done = poll(client, created.id)
    assert done.status == "completed"
    items = list(client.conversations.items.list(chat.id, order="asc"))
    assert [item.type for item in items] == ["message", "reasoning", "message"]
    assert items[-1].content[0].text == "Hello there!"


def test_hostile_resume_parameters_are_400s_or_clamped_never_500s(server, client, raw):
    created = client.responses.create(model=server.model, input="Hi", background=True)
    poll(client, created.id)
    path = f"/v1/responses/{created.id}"
    for params in ({"stream": "maybe"}, {"stream": "true", "starting_after": "abc"}):
        answer = raw.get(path, params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["type"] == "invalid_request_error"
    huge = events_of(raw.get(path, params={"stream": "true", "starting_after": 10**30}))
    assert [e["type"] for e in huge] == ["response.completed"]
    below = events_of(raw.get(path, params={"stream": "true", "starting_after": -(10**30)}))
    assert below[0]["sequence_number"] == 0


def test_one_key_follows_at_most_16_streams_at_once(server, client, raw, backend):
    backend.script = slow(0.05)
    created = client.responses.create(model=server.model, input="Hi", background=True)
    url = f"/v1/responses/{created.id}"
    readers = []  # (held: a dropped iterator closes its stream)
    with contextlib.ExitStack() as streams:
        for _ in range(16):
            stream = streams.enter_context(raw.stream("GET", url, params={"stream": "true"}))
            assert stream.status_code == 200
            readers.append(stream.iter_bytes())
            next(readers[-1])  # following now
        refused = raw.get(url, params={"stream": "true"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["type"] == "rate_limit_error"
    client.responses.cancel(created.id)
    again = raw.get(url, params={"stream": "true"})  # the closed streams gave their places back
    assert again.status_code == 200
    assert events_of(again)[-1]["type"] == "response.cancelled"


def test_a_cancel_on_another_replica_as_the_response_finishes_leaves_nothing_stored(
    server, client, monkeypatch
):
    """Another replica cancels (it closes the row in the shared store; this runner is not told)
    after the last text was logged, just before the result is kept: the response ends
    `cancelled`, with no conversation turn left behind."""
    from proxy.api.responses.background_run import BackgroundRunner

    checked = BackgroundRunner._active

    async def cancelled_elsewhere_first(runner: BackgroundRunner) -> bool:
        closed = await asyncio.to_thread(
            runner.log.close, runner.response_id, "cancelled", "response.cancelled"
        )
        assert closed is not None and closed.status == "cancelled"
        return await checked(runner)

    monkeypatch.setattr(BackgroundRunner, "_active", cancelled_elsewhere_first)
    chat = client.conversations.create()
    created = client.responses.create(
        model=server.model, input="Hi", background=True, conversation=chat.id
    )
    assert poll(client, created.id).status == "cancelled"
    time.sleep(0.5)  # (what the runner would still have stored by now)
    assert client.responses.retrieve(created.id).status == "cancelled"
    assert list(client.conversations.items.list(chat.id)) == []
