"""Events the run yields at once go out in one socket write (`Step.more`, proxy/core/events.py).

A write costs the server more than the bytes in it, and a stream's fixed events come in bursts:
the opening events with the engine's first output (which the run has before the response
starts), a finish with the text of its output, then usage and the end. These tests
record the body writes of the real server's SSE responses (chat, Responses, Messages) and check
that those bursts are single writes, that the bytes are the same as the client reads, and that
a slow engine's tokens are still written one by one (nothing waits for a later token).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.coalesce import StreamInterval
from proxy.server.settings import ProxyConfig
from proxy.server.sse import SseResponse
from tests.proxy.helpers import body, sse_events, toks
from tests.support.runs import new_run
from tests.support.server_fixtures import TEST_DATE

ANSWER = toks("<|channel|>final<|message|>Hello there, friend.<|return|>")


class Writes(list[bytes]):
    """Body writes in order; `ends`: how many ended the body (`more_body` false), `empty`: how
    many carried no bytes (a write of its own only for the end of the body)."""

    ends = 0
    empty = 0


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Writes]:
    """The body writes of every SSE response served meanwhile, in order."""
    recorded = Writes()
    original = SseResponse.__call__

    async def recording(self: SseResponse, scope: Any, receive: Any, send: Any) -> None:
        async def recorded_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                if message.get("body"):
                    recorded.append(message["body"])
                else:
                    recorded.empty += 1
                recorded.ends += not message.get("more_body", False)
            await send(message)

        await original(self, scope, receive, recorded_send)

    monkeypatch.setattr(SseResponse, "__call__", recording)
    yield recorded


def _post(server: Any, path: str, payload: dict[str, Any]) -> str:
    response = httpx.post(f"{server.url}{path}", json=payload, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def test_chat_writes_the_role_at_the_first_output_and_the_end_at_once(
    scripted_server: Any, writes: Writes
) -> None:
    scripted_server.backend.script = Script(choices=[ANSWER])
    payload = body(scripted_server.model, stream=True, stream_options={"include_usage": True})
    text = _post(scripted_server, "/v1/chat/completions", payload)
    assert b"".join(writes).decode() == text
    # The first output is `<|channel|>` alone: the role chunk goes out then, not with the text
    # three engine steps later.
    first, last = sse_events(writes[0].decode()), sse_events(writes[-1].decode())
    assert len(first) == 1 and '"role":"assistant"' in first[0]
    assert '"content":"Hello"' in writes[1].decode()
    # The finish chunk, usage and [DONE] (`<|return|>`, an output of its own): one write...
    assert len(last) == 3 and last[-1] == "[DONE]"
    assert '"finish_reason":"stop"' in last[0] and '"usage":{' in last[1]
    # ... with the end of the body (the chunked encoding's last chunk).
    assert writes.ends == 1 and writes.empty == 0
    # Between them, one write per token, as before.
    assert all(len(sse_events(w.decode())) == 1 for w in writes[1:-1])


def test_each_choices_role_and_an_errors_end_are_one_write_each(
    scripted_server: Any, writes: Writes
) -> None:
    scripted_server.backend.script = Script(choices=[ANSWER, ANSWER])
    payload = body(scripted_server.model, stream=True, n=2)
    _post(scripted_server, "/v1/chat/completions", payload)
    first = sse_events(writes[0].decode())
    assert len(first) == 2 and all('"role":"assistant"' in e for e in first)
    # An engine failure mid-stream: the error event, every choice's finish and [DONE] at once.
    writes.clear()
    scripted_server.backend.script = Script(choices=[ANSWER], fail_after=6)
    _post(scripted_server, "/v1/chat/completions", body(scripted_server.model, stream=True))
    last = sse_events(writes[-1].decode())
    assert '"error"' in last[0] and '"finish_reason":"stop"' in last[1] and last[2] == "[DONE]"
    assert len(last) == 3


def test_responses_and_messages_write_their_opening_at_the_first_output(
    scripted_server: Any, writes: Writes
) -> None:
    scripted_server.backend.script = Script(choices=[ANSWER])
    model = scripted_server.model
    text = _post(scripted_server, "/v1/responses", {"model": model, "input": "Hi", "stream": True})
    assert b"".join(writes).decode() == text
    opening = writes[0].decode()
    assert "response.created" in opening and "response.in_progress" in opening
    assert "response.output_text.delta" not in opening  # (the text came in later outputs)
    # The run's end and the items it closes: one write; then the terminal event alone (after
    # the store has the response) with the end of the body.
    closing = [w.decode() for w in writes if b"response.output_text.done" in w]
    assert len(closing) == 1 and "response.output_item.done" in closing[0]
    assert "response.completed" in writes[-1].decode() and len(writes[-1].split(b"\n\n")) == 2
    writes.clear()
    payload = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
    }
    text = _post(scripted_server, "/v1/messages", payload)
    assert b"".join(writes).decode() == text
    opening, end = writes[0].decode(), writes[-1].decode()
    assert "message_start" in opening and "text_delta" not in opening
    assert "content_block_stop" in end and "message_stop" in end
    assert writes.ends == 2 and writes.empty == 0  # (both responses ended with their last bytes)


def test_a_slow_engines_tokens_are_written_as_they_come(
    scripted_server: Any, writes: Writes
) -> None:
    """`more` joins only what is at hand: with a pause before every token, each token's
    chunk is its own write."""
    scripted_server.backend.script = Script(choices=[ANSWER], delay=0.01)
    payload = body(scripted_server.model, stream=True)
    _post(scripted_server, "/v1/chat/completions", payload)
    contents = [w for w in writes if b'"content":"' in w and b'"role"' not in w]
    assert all(len(sse_events(w.decode())) == 1 for w in contents)
    assert len(contents) >= 4


def test_with_merging_off_every_event_is_its_own_write(make_server: Any, writes: Writes) -> None:
    """`--no-merge-ready-outputs` (the comparison setup): one write per chunk, but the end
    of the body still goes with the last."""
    backend = ScriptedBackend(Script(choices=[ANSWER]))
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        stream_interval=StreamInterval(merge=False),
    )
    server = make_server(config, backend)
    payload = body(backend.model_name, stream=True, stream_options={"include_usage": True})
    _post(server, "/v1/chat/completions", payload)
    assert all(len(sse_events(w.decode())) == 1 for w in writes[:-1])
    assert sse_events(writes[-1].decode())[-1] == "[DONE]"


def _steps_of(script: Script, n: int = 1) -> list[Any]:
    run = new_run(ScriptedBackend(script), n=n)

    async def collect() -> list[Any]:
        await run.start()
        try:
            return [step async for step in run.steps()]
        finally:
            await run.close()

    return asyncio.run(collect())


def test_the_run_marks_only_steps_followed_at_once() -> None:
    # Token by token: the finish (on `<|return|>`, an output of its own) is followed at once
    # by the engine's end; no text step is followed by anything but a wait for the engine.
    steps = _steps_of(Script(choices=[ANSWER]))
    *texts, finish = steps
    assert finish.finish == "stop" and finish.more
    assert texts and not any(step.more for step in texts)
    # The first output (`<|channel|>`) adds no events: its step is empty, for the writers.
    assert texts[0].events == [] and all(step.events for step in texts[1:])
    # One output with the last text and its end: both followed at once.
    text, finish = _steps_of(Script(choices=[ANSWER], chunk_sizes=(len(ANSWER),)))
    assert text.events and text.more and finish.finish == "stop" and finish.more
    # Two choices: a choice's finish is followed at once only when the other is over too.
    other = toks("<|channel|>final<|message|>Hi.<|return|>")
    steps = _steps_of(Script(choices=[ANSWER, other]), n=2)
    finishes = [step for step in steps if step.finish is not None]
    assert [step.more for step in finishes] == [False, True]
