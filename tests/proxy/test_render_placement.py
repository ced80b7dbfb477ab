"""Where a request is planned: on the event loop when small, in the plan executor when not.

A thread hop costs more than rendering a short prompt, while a long one (or a new tool set's
schema check and grammar compile) would stall every other stream on the loop
(proxy/core/planning.py, `plans_quickly`). Both paths must give the same prompt.
"""

from __future__ import annotations

import threading

import httpx

from proxy.backends.scripted import Script
from proxy.core.planning import INLINE_RENDER_CHARS, plans_quickly
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
    # Tools or an answer schema mean schema checks and a grammar: never on the loop.
    assert not plans_quickly(_request("Hi", tools=1))
    assert not plans_quickly(_request("Hi", response_format={"type": "json_object"}))
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
