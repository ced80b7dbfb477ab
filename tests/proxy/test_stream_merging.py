"""Streams write what is ready: merged outputs carry exactly the unmerged stream's text.

The real server (uvicorn on 127.0.0.1) over a scripted engine that hands several outputs over at
once (`Script.ready_together`, what a loaded engine's backlog looks like), raw HTTP clients. The
same completion is streamed one output at a time and merged; the joined fields (content,
reasoning, call ids, names and arguments, logprobs, finish reasons, usage) must be equal, in
fewer chunks. proxy/core/coalesce.py says what is merged and what is never held back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.coalesce import StreamInterval
from proxy.core.loop_pressure import LoopPressure
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import (
    WEATHER_TOOL,
    delta_chunks,
    joined_stream,
    sse_events,
    stream_chunks,
    toks,
)
from tests.support.replay import answer_completion, tool_call_completion
from tests.support.server_fixtures import TEST_DATE, RunningServer

MODEL = "scripted-gpt-oss"
PREAMBLE_CALL = toks(
    "<|channel|>analysis<|message|>The user wants Paris weather.<|end|>"
    "<|start|>assistant<|channel|>analysis<|message|>Second thought, same plan.<|end|>"
    "<|start|>assistant<|channel|>commentary<|message|>Let me look that up.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
    '<|message|>{"city": "Paris", "note": "a long argument value, split over many tokens"}'
    "<|call|>"
)
ANSWER = list(answer_completion(120))
TOOL_CALL = list(tool_call_completion(80))
# (name, the script's choices, chunk sizes, extra request fields)
CASES = [
    ("answer", [ANSWER], (1,), {}),
    ("answer-mixed-chunks", [ANSWER], (1, 3, 2), {}),
    ("tool-call", [TOOL_CALL], (1,), {"tools": [WEATHER_TOOL]}),
    ("preamble-and-call", [PREAMBLE_CALL], (1,), {"tools": [WEATHER_TOOL]}),
    ("two-choices", [ANSWER, PREAMBLE_CALL], (1, 2), {"n": 2, "tools": [WEATHER_TOOL]}),
    ("logprobs", [ANSWER], (1,), {"logprobs": True, "top_logprobs": 2}),
]


@pytest.fixture
def server(make_server) -> RunningServer:
    return _server_with(make_server, StreamInterval())


def _backend(server: RunningServer) -> ScriptedBackend:
    assert isinstance(server.backend, ScriptedBackend)
    return server.backend


def _chat(server: RunningServer, **fields: Any) -> list[dict[str, Any]]:
    payload = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "stream_options": {"include_usage": True},
        **fields,
    }
    with httpx.Client(timeout=60) as client:
        return stream_chunks(client, f"{server.base_url}/chat/completions", payload)


@pytest.mark.parametrize(("name", "choices", "sizes", "extra"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("together", [3, 1000])
def test_merged_chat_chunks_carry_exactly_the_unmerged_text_and_arguments(
    server: RunningServer, name: str, choices: list, sizes: tuple, extra: dict, together: int
) -> None:
    n = extra.get("n", 1)
    backend = _backend(server)
    backend.script = Script(choices=choices, chunk_sizes=sizes)
    one_by_one = _chat(server, **extra)
    backend.script = Script(choices=choices, chunk_sizes=sizes, ready_together=together)
    merged = _chat(server, **extra)
    assert joined_stream(merged, n) == joined_stream(one_by_one, n)
    assert delta_chunks(merged) < delta_chunks(one_by_one)
    for joined in joined_stream(merged, n)["choices"]:
        assert len(joined["finish"]) == 1  # the finish chunk is always there, once
    assert len(joined_stream(merged, n)["usage"]) == 1


def test_a_finish_chunk_stays_its_own_chunk(server: RunningServer) -> None:
    _backend(server).script = Script(choices=[ANSWER], ready_together=1000)
    chunks = _chat(server)
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1
    assert finishing[0]["choices"][0]["delta"] == {}
    assert chunks[-1]["usage"]["completion_tokens"] == len(ANSWER)


def test_a_calls_name_goes_out_in_the_write_that_parsed_its_header(
    server: RunningServer,
) -> None:
    """Everything ready at once except the arguments: the header's write carries the name."""
    header_end = PREAMBLE_CALL.index(toks("<|message|>")[0], len(PREAMBLE_CALL) - 30) + 1
    # Every chunk up to the header's end is one ready group; then the arguments one by one.
    sizes = (header_end, *([1] * len(PREAMBLE_CALL)))
    _backend(server).script = Script(
        choices=[PREAMBLE_CALL], chunk_sizes=sizes, delay=0.01, ready_together=1
    )
    chunks = _chat(server, tools=[WEATHER_TOOL])
    calls = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    first = calls[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["function"]["name"] == "get_weather"
    assert first["function"]["arguments"] == ""  # not held back for the arguments to come


def _responses(server: RunningServer, **fields: Any) -> list[dict[str, Any]]:
    payload = {"model": MODEL, "input": "Weather in Paris?", "stream": True, **fields}
    response = httpx.post(f"{server.base_url}/responses", json=payload, timeout=60)
    assert response.status_code == 200, response.text
    return [json.loads(e) for e in sse_events(response.text)]


def _items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per output index: its type, name, and the text joined from its delta events."""
    items: dict[int, dict[str, Any]] = {}
    for event in events:
        kind = event["type"]
        if kind == "response.output_item.added":
            item = event["item"]
            items[event["output_index"]] = {
                "type": item["type"],
                "name": item.get("name"),
                "text": "",
            }
        elif kind.endswith(".delta"):
            entry = items[event["output_index"]]
            entry["text"] += event["delta"]
    return [items[i] for i in sorted(items)]


RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": WEATHER_TOOL["function"]["parameters"],
}


@pytest.mark.parametrize(
    ("choices", "extra"),
    [([ANSWER], {}), ([PREAMBLE_CALL], {"tools": [RESPONSES_TOOL]})],
    ids=["answer", "preamble-and-call"],
)
def test_merged_responses_events_carry_exactly_the_unmerged_text(
    server: RunningServer, choices: list, extra: dict
) -> None:
    backend = _backend(server)
    backend.script = Script(choices=choices)
    one_by_one = _responses(server, **extra)
    backend.script = Script(choices=choices, ready_together=1000)
    merged = _responses(server, **extra)
    assert _items(merged) == _items(one_by_one)
    deltas = [e for e in merged if e["type"].endswith(".delta")]
    assert len(deltas) == len(_items(merged))  # one delta event per item, the joined text
    assert len(deltas) < sum(1 for e in one_by_one if e["type"].endswith(".delta"))
    last = merged[-1]
    assert last["type"] == "response.completed"
    assert last["response"]["usage"] == one_by_one[-1]["response"]["usage"]
    if extra:
        kinds = [e["type"] for e in merged]
        added = kinds.index("response.output_item.added", kinds.index("response.content_part.done"))
        assert added < kinds.index("response.function_call_arguments.delta")


def test_with_the_loop_idle_every_output_is_its_own_chunk(server: RunningServer) -> None:
    backend = _backend(server)
    backend.script = Script(choices=[ANSWER])
    instant = _chat(server)
    backend.script = Script(choices=[ANSWER], delay=0.002)
    paced = _chat(server)
    assert delta_chunks(paced) == delta_chunks(instant)
    assert joined_stream(paced, 1) == joined_stream(instant, 1)


# -- floors ------------------------------------------------------------------------------------


def _server_with(
    make_server, interval: StreamInterval, *, when_behind: bool = False
) -> RunningServer:
    """A server with these floors. Chunk counts are asserted, so the loop's own backlog floor
    is off unless asked for: the test loop is shared, and a stall there must not merge."""
    backend = ScriptedBackend()
    config = ProxyConfig(
        served_model_names=(backend.model_name,),
        conversation_date=TEST_DATE,
        stream_interval=dataclasses.replace(interval, when_behind=when_behind),
    )
    return make_server(config, backend)


def test_a_token_floor_writes_every_n_tokens(make_server) -> None:
    server = _server_with(make_server, StreamInterval(tokens=8))
    _backend(server).script = Script(choices=[TOOL_CALL])
    floored = _chat(server, tools=[WEATHER_TOOL])
    plain = _server_with(make_server, StreamInterval())
    _backend(plain).script = Script(choices=[TOOL_CALL])
    unfloored = _chat(plain, tools=[WEATHER_TOOL])
    assert joined_stream(floored, 1) == joined_stream(unfloored, 1)
    assert delta_chunks(floored) <= delta_chunks(unfloored) // 4


def test_a_time_floor_writes_fewer_chunks(make_server) -> None:
    server = _server_with(make_server, StreamInterval(ms=60))
    _backend(server).script = Script(choices=[ANSWER], delay=0.005)
    floored = _chat(server)
    _backend(server).script = Script(choices=[ANSWER])
    assert joined_stream(floored, 1) == joined_stream(_chat(server), 1)
    # About 0.6 s of generation in 60 ms writes: a dozen or so, against one per token.
    assert delta_chunks(floored) <= len(ANSWER) // 4


def test_a_time_floor_writes_held_text_when_the_engine_pauses(make_server) -> None:
    server = _server_with(make_server, StreamInterval(ms=100))
    pause_at = 60
    _backend(server).script = Script(choices=[ANSWER], delay=0.002, pauses={pause_at: 1.5})
    payload = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "stream": True,
    }
    arrivals: list[tuple[float, str]] = []
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=payload, timeout=60
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
                text = (delta.get("reasoning") or "") + (delta.get("content") or "")
                if text:
                    arrivals.append((time.monotonic(), text))
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:], strict=False)]
    pause = max(range(len(gaps)), key=gaps.__getitem__)
    assert gaps[pause] > 1.0  # the stall shows as a gap between writes, not inside one
    # Everything generated before the stall was written before it: the text before the gap
    # is the decoded text of the first `pause_at` tokens.
    before = "".join(text for _, text in arrivals[: pause + 1])
    _backend(server).script = Script(choices=[ANSWER[:pause_at] + toks("<|end|>")])
    head = joined_stream(_chat(server), 1)["choices"][0]
    assert before == head["reasoning"] + head["content"]


def test_the_request_asks_for_a_coarser_stream(server: RunningServer) -> None:
    _backend(server).script = Script(choices=[ANSWER], delay=0.005)
    plain = _chat(server)
    asked = _chat(server, stream_options={"include_usage": True, "stream_interval_ms": 80})
    assert joined_stream(asked, 1) == joined_stream(plain, 1)
    assert delta_chunks(asked) <= delta_chunks(plain) // 4


def test_a_request_above_the_server_bound_is_clamped(make_server) -> None:
    server = _server_with(make_server, StreamInterval(max_ms=20))
    _backend(server).script = Script(choices=[ANSWER], delay=0.005)
    started = time.monotonic()
    chunks = _chat(server, stream_options={"stream_interval_ms": 60_000})
    # Held for 60 s per write, the answer would come in two chunks a minute apart.
    assert time.monotonic() - started < 30
    assert delta_chunks(chunks) > 5


def test_interval_bounds() -> None:
    server = StreamInterval(tokens=1, ms=10, max_ms=200)
    assert server.asked(None) == server
    assert server.asked(5).ms == 10  # finer than the operator's floor: the floor stays
    assert server.asked(50).ms == 50
    assert server.asked(5000).ms == 200


@pytest.mark.parametrize("value", [-1, 60_001, 1e300, "5", True, [5], {"ms": 5}])
def test_a_bad_stream_interval_is_a_400_naming_it(server: RunningServer, value: Any) -> None:
    payload = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"stream_interval_ms": value},
    }
    response = httpx.post(f"{server.base_url}/chat/completions", json=payload, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "stream_options.stream_interval_ms"
    assert error["type"] == "invalid_request_error"


def test_the_flags_reach_every_worker_config() -> None:
    """`--workers` children build their config from the same settings (proxy/server/workers.py)."""
    from proxy.server.cli import parse_settings

    argv = ["serve", "--stream-interval", "4", "--stream-interval-ms", "25"]
    argv += ["--max-stream-interval-ms", "300", "--no-merge-ready-outputs"]
    config = parse_settings(argv, environ={}).proxy_config(None)
    assert config.stream_interval == StreamInterval(4, 25.0, 300.0, merge=False)
    config = parse_settings(["serve", "--no-merge-when-behind"], environ={}).proxy_config(None)
    assert config.stream_interval == StreamInterval(when_behind=False)
    assert config.service_settings().stream_interval == config.stream_interval


def test_a_responses_request_asks_for_a_coarser_stream(server: RunningServer) -> None:
    _backend(server).script = Script(choices=[ANSWER], delay=0.005)
    plain = _responses(server)
    asked = _responses(server, stream_options={"stream_interval_ms": 80})
    assert _items(asked) == _items(plain)
    deltas = sum(1 for e in asked if e["type"].endswith(".delta"))
    assert deltas <= sum(1 for e in plain if e["type"].endswith(".delta")) // 4


@pytest.mark.parametrize("value", [-0.5, 1e9, "80", False])
def test_a_bad_responses_stream_interval_is_a_400_naming_it(
    server: RunningServer, value: Any
) -> None:
    payload = {"model": MODEL, "input": "Hi", "stream": True}
    payload["stream_options"] = {"stream_interval_ms": value}
    response = httpx.post(f"{server.base_url}/responses", json=payload, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "stream_options.stream_interval_ms"


def test_merging_can_be_turned_off(make_server) -> None:
    server = _server_with(make_server, StreamInterval(merge=False))
    _backend(server).script = Script(choices=[ANSWER], ready_together=1000)
    merged_off = _chat(server)
    _backend(server).script = Script(choices=[ANSWER])
    one_by_one = _chat(server)
    assert delta_chunks(merged_off) == delta_chunks(one_by_one)
    assert joined_stream(merged_off, 1) == joined_stream(one_by_one, 1)


def test_joining_events_makes_new_ones_and_keeps_items_apart() -> None:
    """Adjacent pieces of one message or call become one; other boundaries stay."""
    from proxy.core.coalesce import join_events
    from proxy.core.events import CallArguments, CallEnd, CallStart, Text

    first = Text("reasoning", 0, "a")
    events = [
        first,
        Text("reasoning", 0, "b"),
        Text("reasoning", 1, "c"),  # another analysis message: its own piece
        Text("content", 2, "d", final=False),
        CallStart(0, 3, "call_x", "get_weather"),
        CallArguments(0, '{"city"'),
        CallArguments(0, ': "Paris"}'),
        CallEnd(0),
    ]
    assert join_events(events) == [
        Text("reasoning", 0, "ab"),
        Text("reasoning", 1, "c"),
        Text("content", 2, "d", final=False),
        CallStart(0, 3, "call_x", "get_weather", '{"city": "Paris"}'),
        CallEnd(0),
    ]
    assert first.text == "a"  # the assembler's events are not changed


# -- a paced engine (benchmarks/bench_paced.py) ------------------------------------------------


def test_a_paced_engine_hands_over_its_backlog_together() -> None:
    """A reader that keeps up waits for each token; one that fell behind finds every token due
    by then in one group (`more_ready` on all but its last), and the tokens are the same."""
    import asyncio

    from proxy.backends.base import SamplingConfig

    tokens = ANSWER[:24]
    step = 0.01

    async def read(lag_after: int | None) -> tuple[list[int], list[bool], float]:
        backend = ScriptedBackend(Script(choices=[tokens], pace=step, ignore_stop_tokens=True))
        got: list[int] = []
        more: list[bool] = []
        began = time.monotonic()
        async for chunk in backend.generate([1], SamplingConfig(max_tokens=100), "r"):
            got += chunk.token_ids
            more.append(chunk.more_ready)
            if len(more) == lag_after:
                await asyncio.sleep(30 * step)  # the server busy elsewhere: the rest falls due
        return got, more, time.monotonic() - began

    kept_up, kept_more, took = asyncio.run(read(None))
    assert kept_up == tokens
    assert took >= 23 * step  # paced, not instant
    # (a loaded test host may stall the loop past a step now and then: most are still waited)
    assert sum(kept_more) <= len(tokens) // 4
    behind, behind_more, _ = asyncio.run(read(4))
    assert behind == tokens
    assert all(behind_more[4:-1])  # the whole backlog came as one group
    assert behind_more[-1] is False


# -- the loop's own backlog (proxy/core/loop_pressure.py) ---------------------------------------


class _LoopHog:
    """Holds the server's event loop 8 ms at a time, yielding between: a sustained backlog
    that the server's lag monitor measures, as hundreds of streams would make it."""

    def __init__(self, block: float = 0.008) -> None:
        self.running = True
        self.block = block  # seconds held at a time
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._hog())

    async def _hog(self) -> None:
        while self.running:
            time.sleep(self.block)
            await asyncio.sleep(0)

    async def stop(self) -> None:
        self.running = False
        assert self.task is not None
        await self.task


def _wait_until(
    condition: Callable[[], bool],
    failure: str,
    step: Callable[[], object] = lambda: time.sleep(0.05),
) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, failure
        step()


@contextlib.contextmanager
def _loop_behind(
    background_loop,
    pressure: LoopPressure,
    step: Callable[[], object] = lambda: time.sleep(0.05),
    block: float = 0.008,
) -> Iterator[None]:
    """The server's loop hogged (`_LoopHog`, `block` seconds at a time) from when its lag
    monitor reports the backlog until the block ends; `step` runs while waiting for the report."""
    hog = _LoopHog(block)
    background_loop.run(hog.start())
    try:
        _wait_until(lambda: pressure.hold > 0, "the lag monitor never saw the backlog", step)
        yield
    finally:
        background_loop.run(hog.stop())


@pytest.mark.parametrize("case", ["answer-logprobs", "tool-call"])
def test_while_the_loop_runs_late_streams_write_fewer_chunks_with_the_same_text(
    make_server, background_loop, case: str
) -> None:
    server = _server_with(make_server, StreamInterval(), when_behind=True)
    pressure = server.app.state.service.pressure
    script, extra = (
        (Script(choices=[ANSWER]), {"logprobs": True, "top_logprobs": 2})
        if case == "answer-logprobs"
        else (Script(choices=[TOOL_CALL]), {"tools": [WEATHER_TOOL]})
    )
    _backend(server).script = script
    reference = _server_with(make_server, StreamInterval())  # (no backlog floor: one per output)
    _backend(reference).script = script
    plain = _chat(reference, **extra)
    with _loop_behind(background_loop, pressure):
        behind = _chat(server, **extra)
    assert joined_stream(behind, 1) == joined_stream(plain, 1)
    assert delta_chunks(behind) <= delta_chunks(plain) // 3
    if case == "tool-call":  # the call's id and name still come before any of its arguments
        calls = [
            c["choices"][0]["delta"]["tool_calls"][0]
            for c in behind
            if c["choices"] and c["choices"][0]["delta"].get("tool_calls")
        ]
        assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"]
    # Once the loop keeps up again, every output is its own chunk again.
    _wait_until(lambda: pressure.hold == 0, "the backlog floor outlived the backlog")
    assert delta_chunks(_chat(server, **extra)) == delta_chunks(plain)


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The read-ahead tasks (`ChunkReader`s) runs start meanwhile, one entry each."""
    import proxy.core.pacing

    started: list[object] = []

    class Counted(proxy.core.pacing.ChunkReader):
        def __init__(self, *args: Any) -> None:
            started.append(args)
            super().__init__(*args)

    monkeypatch.setattr(proxy.core.pacing, "ChunkReader", Counted)
    return started


def test_an_engine_that_merges_is_read_once_per_hold_not_ahead(
    make_server, background_loop, readers: list[object]
) -> None:
    """An engine that keeps its outputs until read (here a paced script whose due tokens come
    as one output, as vLLM's collector merges them) is not read ahead while the loop runs late:
    no read-ahead task, and one read per hold, with the same text and the finish."""
    script = Script(choices=[ANSWER], pace=0.002, pace_merged=True)
    server = _server_with(make_server, StreamInterval(), when_behind=True)
    assert _backend(server).merges_while_unread is False  # (its default script: not paced)
    _backend(server).script = script
    assert _backend(server).merges_while_unread
    pressure = server.app.state.service.pressure
    reference = _server_with(make_server, StreamInterval())
    _backend(reference).script = Script(choices=[ANSWER])
    plain = _chat(reference)
    with _loop_behind(background_loop, pressure):
        behind = _chat(server)
        assert pressure.hold > 0
    assert readers == []
    assert joined_stream(behind, 1) == joined_stream(plain, 1)
    # (The hog alone merges a third away; reading once per hold leaves a few chunks.)
    assert delta_chunks(behind) <= delta_chunks(plain) // 10
    assert behind[-2]["choices"][0]["finish_reason"] == "stop"  # then the usage chunk
    # An engine that makes its outputs only when asked is still read ahead.
    _backend(server).script = Script(choices=[ANSWER])
    with _loop_behind(background_loop, pressure):
        assert joined_stream(_chat(server), 1) == joined_stream(plain, 1)
    assert len(readers) == 1


@pytest.mark.engine
def test_the_vllm_engine_is_read_once_per_hold_while_the_loop_runs_late(
    make_server, background_loop, vllm_backend, readers: list[object]
) -> None:
    """The real engine (its output collector merges what a request made until read) under a
    loop held 25 ms at a time: no read-ahead task, fewer chunks than with the loop idle, and
    the same greedy text and finish."""
    assert vllm_backend.merges_while_unread
    config = ProxyConfig(
        served_model_names=(vllm_backend.model_name,),
        conversation_date=TEST_DATE,
        stream_interval=StreamInterval(when_behind=True),
    )
    server = make_server(config, vllm_backend)
    pressure = server.app.state.service.pressure
    payload = {
        "model": vllm_backend.model_name,
        "messages": [{"role": "user", "content": "Write a short poem about the sea."}],
        "stream_options": {"include_usage": True},
        "max_tokens": 96,
        "temperature": 0,
    }

    def chat() -> list[dict[str, Any]]:
        with httpx.Client(timeout=300) as client:
            return stream_chunks(client, f"{server.base_url}/chat/completions", payload)

    _wait_until(lambda: pressure.hold == 0, "the loop was behind before the test")
    plain = chat()
    with _loop_behind(background_loop, pressure, block=0.025):
        behind = chat()
    assert readers == []
    assert joined_stream(behind, 1) == joined_stream(plain, 1)
    assert behind[-1]["usage"] == plain[-1]["usage"]
    # (A hold of about 100 ms takes several of the CPU engine's tokens at a time.)
    assert delta_chunks(behind) <= delta_chunks(plain) * 3 // 4


def test_the_backlog_floor_can_be_turned_off(make_server, background_loop) -> None:
    server = _server_with(make_server, StreamInterval(), when_behind=False)
    pressure = server.app.state.service.pressure
    _backend(server).script = Script(choices=[ANSWER])
    plain = _chat(server)
    with _loop_behind(background_loop, pressure):
        behind = _chat(server)
    assert delta_chunks(behind) == delta_chunks(plain)


def test_loop_pressure_needs_a_sustained_backlog() -> None:
    pressure = LoopPressure()
    for _ in range(pressure.sustain - 1):
        pressure.observe(0.050)
    assert pressure.hold == 0  # a few stalls are not a backlog
    pressure.observe(0.050)
    assert pressure.hold == pytest.approx(min(pressure.most, 4 * 0.050))
    pressure.observe(0.003)  # still late: stays
    assert pressure.hold == pressure.least
    pressure.observe(0.0005)  # on time once: stays
    assert pressure.hold == pressure.least
    pressure.observe(0.0005)  # on time twice: leaves
    assert pressure.hold == 0
    pressure.observe(0.050)
    assert pressure.hold == 0  # and needs a sustained backlog again


def test_a_backlog_just_past_the_threshold_still_holds_50_ms() -> None:
    """The hold's floor: with 20 ms the loop caught up within a hold or two, left the backlog
    floor and fell behind again, and 256 instant streams ran at 0.83x the tokens per CPU second
    (loop_pressure.py's docstring); four times a lateness of 6 ms would be 24 ms."""
    pressure = LoopPressure()
    for _ in range(pressure.sustain):
        pressure.observe(0.006)
    assert pressure.hold == pytest.approx(0.05)


@pytest.mark.parametrize("engine", ["asked", "merging"])
def test_a_drain_after_the_loop_fell_behind_mid_stream_ends_the_stream_cleanly(
    make_server, background_loop, engine: str
) -> None:
    """The read-ahead starts mid-stream when the loop falls behind; the drain's end must still
    reach the engine wait (in the reader's task now) and end the stream with the error event,
    a finish chunk and [DONE], not cancel the response. An engine that merges is not read
    ahead (the run sleeps out its holds): the drain reaches it at its next read."""
    server = _server_with(make_server, StreamInterval(), when_behind=True)
    pressure = server.app.state.service.pressure
    tokens = list(answer_completion(400))
    _backend(server).script = (
        Script(choices=[tokens], delay=0.01)
        if engine == "asked"
        else Script(choices=[tokens], pace=0.01, pace_merged=True)
    )
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    lines: list[str] = []
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=payload, timeout=60
    ) as response:
        events = (line for line in response.iter_lines() if line.startswith("data: "))
        lines += [next(events) for _ in range(5)]  # streaming, the loop keeping up
        with _loop_behind(background_loop, pressure, step=lambda: lines.append(next(events))):
            lines += [next(events) for _ in range(2)]  # written by the read-ahead now

            async def expire() -> None:
                server.app.state.lifecycle.expired.set()

            background_loop.run(expire())
            lines += list(events)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    errors = [c["error"] for c in chunks if "error" in c]
    assert len(errors) == 1, errors
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    assert finishes[-1] == "stop"
    assert _backend(server).aborted  # and the engine was told
