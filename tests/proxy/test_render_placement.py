"""Where a request is planned: on the event loop when small and its slow parts are cached, in
the plan executor when not.

A thread hop costs more than rendering a short prompt, while a long one (or a new tool set's
schema check and grammar compile) would stall every other stream on the loop
(proxy/core/planning.py, `plans_quickly`, `plan_on_loop`). Both paths must give the same prompt
and the same grammar.
"""

from __future__ import annotations

import copy
import threading
import uuid

import httpx

from proxy.backends.scripted import Script
from proxy.core.gate import Limits, check_request
from proxy.core.planning import (
    INLINE_PART_CHARS,
    INLINE_RENDER_CHARS,
    INLINE_SCHEMA_WEIGHT,
    INLINE_TOOLS,
    plans_quickly,
)
from proxy.core.request import GenerationRequest
from tests.proxy.helpers import body, fold_content, neutral, stream_chunks, toks

ANSWER = toks("<|channel|>final<|message|>Done.<|return|>")


def _request(content: str, tools: int = 0, **extra: object) -> object:
    if tools:
        extra["tools"] = [
            {"type": "function", "function": {"name": f"tool_{i}", "parameters": {}}}
            for i in range(tools)
        ]
    return neutral(body("m", content, **extra))


def _quick(request: GenerationRequest) -> bool:
    """`plans_quickly` with the gate's measure, as the service calls it."""
    return plans_quickly(request, check_request(request, Limits()))


def test_a_short_request_plans_on_the_loop_and_a_long_one_does_not():
    assert _quick(_request("Hi"))
    # A message costs its header's worth of characters besides its text.
    assert _quick(_request("x" * (INLINE_RENDER_CHARS - INLINE_PART_CHARS)))
    assert not _quick(_request("x" * (INLINE_RENDER_CHARS - INLINE_PART_CHARS + 1)))
    # Many tiny messages are a long render too (2,047 one-character ones took 14-30 ms).
    tiny = [{"role": "user", "content": "x"}] * (INLINE_RENDER_CHARS // INLINE_PART_CHARS)
    assert not _quick(neutral({"model": "m", "messages": tiny}))
    assert _quick(neutral({"model": "m", "messages": tiny[:100]}))
    # Small tool sets and answer schemas are small enough (whether their schema checks and
    # grammar are cached is `plan_on_loop`'s to find out); their bytes count with the texts.
    assert _quick(_request("Hi", tools=1))
    assert _quick(_request("Hi", response_format={"type": "json_object"}))
    assert not _quick(_request("Hi", tools=INLINE_TOOLS + 1))
    # A schema's characters weigh INLINE_SCHEMA_WEIGHT of a message's: a schema of a few
    # thousand characters is planned in the executor.
    schema_room = INLINE_RENDER_CHARS // INLINE_SCHEMA_WEIGHT
    big_schema = {"type": "object", "description": "d" * schema_room}
    assert not _quick(
        neutral(
            body(
                "m",
                "Hi",
                tools=[{"type": "function", "function": {"name": "f", "parameters": big_schema}}],
            )
        )
    )
    # Texts count across messages, including tool-call arguments.
    many = neutral(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "x" * (INLINE_RENDER_CHARS // 2)},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "y" * INLINE_RENDER_CHARS},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
        }
    )
    assert not _quick(many)


def test_both_placements_send_the_engine_the_same_prompt(scripted_server, monkeypatch):
    backend = scripted_server.backend
    rendered_on: list[str] = []
    import proxy.core.planning
    import proxy.core.service

    real_plan = proxy.core.service.GenerationService.plan

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        rendered_on.append(threading.current_thread().name)
        return real_plan(self, *args, **kwargs)

    monkeypatch.setattr(proxy.core.service.GenerationService, "plan", spy)
    long_text = "word " * (INLINE_RENDER_CHARS // 5 + 10)
    prompts = []
    with httpx.Client(base_url=scripted_server.url, timeout=30) as client:
        for size in ("short", "long"):
            backend.script = Script([ANSWER])
            inline = size == "short"
            monkeypatch.setattr(proxy.core.planning, "INLINE_RENDER_CHARS", 10**9 if inline else 0)
            chunks = stream_chunks(
                client, "/v1/chat/completions", body(scripted_server.model, long_text)
            )
            assert fold_content(chunks)["content"] == "Done."
            prompts.append(backend.requests[-1].prompt_token_ids)
    loop_thread, worker_thread = rendered_on
    assert loop_thread != worker_thread
    assert prompts[0] == prompts[1]


def _weather(name: str = "get_weather") -> dict:
    """A weather tool whose schema no earlier request in this process sent (a uuid in it)."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": uuid.uuid4().hex}},
                "required": ["city"],
            },
        },
    }


def _spy_on_plans(monkeypatch) -> tuple[list[str], list[str]]:  # noqa: ANN001
    """The threads `GenerationService.plan` and the render ran on, in order."""
    import proxy.core.planning
    import proxy.core.service

    planned_on: list[str] = []
    rendered_on: list[str] = []
    real_plan = proxy.core.service.GenerationService.plan
    real_render = proxy.core.planning.render_prompt

    def plan(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        planned_on.append(threading.current_thread().name)
        return real_plan(self, *args, **kwargs)

    def render(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        rendered_on.append(threading.current_thread().name)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(proxy.core.service.GenerationService, "plan", plan)
    monkeypatch.setattr(proxy.core.planning, "render_prompt", render)
    return planned_on, rendered_on


def _ask(server, tool: dict) -> tuple[list[int], object]:  # noqa: ANN001
    server.backend.script = Script([ANSWER])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        chunks = stream_chunks(
            client, "/v1/chat/completions", body(server.model, "Weather in Oslo?", tools=[tool])
        )
    assert fold_content(chunks)["content"] == "Done."
    request = server.backend.requests[-1]
    return request.prompt_token_ids, request.sampling.structured_outputs


def test_a_tool_set_is_planned_in_the_executor_first_and_on_the_loop_once_cached(
    scripted_server, monkeypatch
):
    """The first request with a new tool set has its schema checked and grammar built in the
    executor (they can take hundreds of milliseconds); the next ones, with everything cached,
    are planned on the loop, and the engine gets the same prompt and grammar each time."""
    planned_on, rendered_on = _spy_on_plans(monkeypatch)
    tool = _weather()
    seen = [_ask(scripted_server, tool) for _ in range(3)]
    # First: an attempt on the loop that misses the schema check, then the executor's plan.
    loop = planned_on[0]
    assert not loop.startswith("plan")
    assert planned_on[1].startswith("plan")
    # Then on the loop only: one plan per request.
    assert planned_on[2:] == [loop, loop]
    assert rendered_on == [planned_on[1], loop, loop]  # the missed attempt rendered nothing
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][1] is not None  # the grammar that makes the call's arguments valid


def test_a_known_schema_under_a_new_name_misses_the_grammar_before_rendering(
    scripted_server, monkeypatch
):
    """The schema check is cached, the grammar (keyed by the tools' names too) is not: the
    miss is found before the prompt is rendered on the loop, and the executor plans it."""
    planned_on, rendered_on = _spy_on_plans(monkeypatch)
    tool = _weather()
    _ask(scripted_server, tool)  # schema and grammar cached under this name
    renamed = copy.deepcopy(tool)
    renamed["function"]["name"] = "weather_" + uuid.uuid4().hex[:8]
    del planned_on[:], rendered_on[:]
    prompt, grammar = _ask(scripted_server, renamed)
    loop, executor = planned_on
    assert not loop.startswith("plan") and executor.startswith("plan")
    assert rendered_on == [executor]
    assert renamed["function"]["name"] in str(grammar)
    # Planned once more, now on the loop, to the same prompt and grammar.
    del planned_on[:], rendered_on[:]
    assert _ask(scripted_server, renamed) == (prompt, grammar)
    assert planned_on == rendered_on == [loop]


def test_tool_schemas_are_weighed_by_the_gates_measure_not_dumped_again(monkeypatch):
    """The gate has dumped every tool schema once to measure it (in C, but a megabyte is still
    a millisecond): the placement weighs its measure and dumps only the answer's schema."""
    import proxy.core.planning

    dumped: list[object] = []

    class Counting:
        JSONEncodeError = proxy.core.planning.orjson.JSONEncodeError

        @staticmethod
        def dumps(value: object) -> bytes:
            dumped.append(value)
            return proxy.core.gate.orjson.dumps(value)

    import proxy.core.gate

    monkeypatch.setattr(proxy.core.planning, "orjson", Counting)
    request = _request("Hi", tools=3)
    measured = check_request(request, Limits())
    assert measured.tool_bytes > 0
    assert plans_quickly(request, measured) and dumped == []
    # The measure decides: the same request weighed as if its tools were large is not quick.
    big = INLINE_RENDER_CHARS // INLINE_SCHEMA_WEIGHT + 1
    assert not plans_quickly(request, type(measured)(tool_bytes=big)) and dumped == []
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    with_answer = _request("Hi", response_format=_json_schema(schema))
    assert plans_quickly(with_answer, check_request(with_answer, Limits()))
    assert dumped == [schema]


def _json_schema(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
