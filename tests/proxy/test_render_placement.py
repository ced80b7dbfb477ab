"""Where a request is planned: on the event loop when small and its slow parts are cached, in
the plan executor when not.

A thread hop costs more than rendering a short prompt, while a long one (or a new tool set's
schema check and grammar compile) would stall every other stream on the loop
(proxy/core/planning.py, `plans_quickly`, `plan_on_loop`). Both paths must give the same prompt
and the same grammar.
"""

from __future__ import annotations

import threading

import httpx

from proxy.backends.scripted import Script
from proxy.core.planning import INLINE_RENDER_CHARS, INLINE_TOOLS, plans_quickly
from tests.proxy.helpers import body, fold_content, neutral, stream_chunks, toks

ANSWER = toks("<|channel|>final<|message|>Done.<|return|>")


def _request(content: str, tools: int = 0, **extra: object) -> object:
    if tools:
        extra["tools"] = [
            {"type": "function", "function": {"name": f"tool_{i}", "parameters": {}}}
            for i in range(tools)
        ]
    return neutral(body("m", content, **extra))


def test_a_short_request_plans_on_the_loop_and_a_long_one_does_not():
    assert plans_quickly(_request("Hi"))
    assert plans_quickly(_request("x" * INLINE_RENDER_CHARS))
    assert not plans_quickly(_request("x" * (INLINE_RENDER_CHARS + 1)))
    # Small tool sets and answer schemas are small enough (whether their schema checks and
    # grammar are cached is `plan_on_loop`'s to find out); their bytes count with the texts.
    assert plans_quickly(_request("Hi", tools=1))
    assert plans_quickly(_request("Hi", response_format={"type": "json_object"}))
    assert not plans_quickly(_request("Hi", tools=INLINE_TOOLS + 1))
    big_schema = {"type": "object", "description": "d" * INLINE_RENDER_CHARS}
    assert not plans_quickly(
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
    assert not plans_quickly(many)


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


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "placement-test"}},
            "required": ["city"],
        },
    },
}


def test_a_tool_set_is_planned_in_the_executor_first_and_on_the_loop_once_cached(
    scripted_server, monkeypatch
):
    """The first request with a new tool set has its schema checked and grammar built in the
    executor (they can take hundreds of milliseconds); the next ones, with everything cached,
    are planned on the loop, and the engine gets the same prompt and grammar both times."""
    backend = scripted_server.backend
    planned_on: list[str] = []
    import proxy.core.service

    real_plan = proxy.core.service.GenerationService.plan

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        planned_on.append(threading.current_thread().name)
        return real_plan(self, *args, **kwargs)

    monkeypatch.setattr(proxy.core.service.GenerationService, "plan", spy)
    seen = []
    with httpx.Client(base_url=scripted_server.url, timeout=30) as client:
        for _ in range(3):
            backend.script = Script([ANSWER])
            chunks = stream_chunks(
                client,
                "/v1/chat/completions",
                body(scripted_server.model, "Weather in Oslo?", tools=[WEATHER]),
            )
            assert fold_content(chunks)["content"] == "Done."
            request = backend.requests[-1]
            seen.append((request.prompt_token_ids, request.sampling.structured_outputs))
    # First: an attempt on the loop that misses the cache, then the executor's plan.
    loop = planned_on[0]
    assert not loop.startswith("plan")
    assert planned_on[1].startswith("plan")
    # Then on the loop only: one plan per request.
    assert planned_on[2:] == [loop, loop]
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][1] is not None  # the grammar that makes the call's arguments valid
