"""Where a prompt is rendered: on the event loop when small, in a worker thread when not.

A thread hop costs more than rendering a short prompt, while a long one would stall every other
stream on the loop (proxy/api/chat.py, `renders_quickly`). Both paths must give the same prompt.
"""

from __future__ import annotations

import threading

import httpx

from proxy.api.chat import INLINE_RENDER_CHARS, INLINE_RENDER_TOOLS, PlanOptions, renders_quickly
from proxy.api.chat_schema import ChatCompletionRequest
from proxy.backends.scripted import Script
from tests.proxy.helpers import body, fold_content, stream_chunks, toks

ANSWER = toks("<|channel|>final<|message|>Done.<|return|>")


def _request(content: str, tools: int = 0) -> ChatCompletionRequest:
    extra = {}
    if tools:
        extra["tools"] = [
            {"type": "function", "function": {"name": f"tool_{i}", "parameters": {}}}
            for i in range(tools)
        ]
    return ChatCompletionRequest.model_validate(body("m", content, **extra))


def test_a_short_request_renders_on_the_loop_and_a_long_one_does_not():
    assert renders_quickly(_request("Hi"), PlanOptions())
    assert renders_quickly(_request("x" * INLINE_RENDER_CHARS), PlanOptions())
    assert not renders_quickly(_request("x" * (INLINE_RENDER_CHARS + 1)), PlanOptions())
    assert renders_quickly(_request("Hi", tools=INLINE_RENDER_TOOLS), PlanOptions())
    assert not renders_quickly(_request("Hi", tools=INLINE_RENDER_TOOLS + 1), PlanOptions())
    # Texts count across messages, including tool-call arguments.
    many = ChatCompletionRequest.model_validate(
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
    assert not renders_quickly(many, PlanOptions())


def test_both_placements_send_the_engine_the_same_prompt(scripted_server, monkeypatch):
    backend = scripted_server.backend
    rendered_on: list[str] = []
    import proxy.api.chat

    real_plan = proxy.api.chat.ChatCompletions._plan

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        rendered_on.append(threading.current_thread().name)
        return real_plan(self, *args, **kwargs)

    monkeypatch.setattr(proxy.api.chat.ChatCompletions, "_plan", spy)
    long_text = "word " * (INLINE_RENDER_CHARS // 5 + 10)
    prompts = []
    with httpx.Client(base_url=scripted_server.url, timeout=30) as client:
        for size in ("short", "long"):
            backend.script = Script([ANSWER])
            inline = size == "short"
            monkeypatch.setattr(proxy.api.chat, "INLINE_RENDER_CHARS", 10**9 if inline else 0)
            chunks = stream_chunks(
                client, "/v1/chat/completions", body(scripted_server.model, long_text)
            )
            assert fold_content(chunks)["content"] == "Done."
            prompts.append(backend.requests[-1].prompt_token_ids)
    loop_thread, worker_thread = rendered_on
    assert loop_thread != worker_thread
    assert prompts[0] == prompts[1]
