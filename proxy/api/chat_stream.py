"""Chat completions' rendering of the neutral steps: `chat.completion.chunk` SSE bytes, or folded.

This is the per-token hot path, so a chunk is not a pydantic model: the part of its JSON that is
the same for the whole request (`{"id":…,"object":…,"created":…,"model":…,"choices":[{"index":`)
is encoded once, only the delta is serialised (orjson), and the result is framed as SSE bytes
here, so proxy/server/sse.py writes it as is. The bytes are what the pydantic models
produced before (same keys, same order), which `tests/proxy/test_chat_render.py` pins down.

Consecutive messages of one kind (two analysis messages, a preamble then the final answer) are
joined with a newline within a choice, as a client that concatenates the deltas expects; the
Responses API keeps them as separate items instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson

from proxy.api.chat_schema import (
    AssistantMessageOut,
    ChatCompletion,
    Choice,
    ChoiceLogprobs,
    FunctionCallOut,
    TokenLogprob,
    ToolCallOut,
    usage_out,
)
from proxy.core.events import CallArguments, CallStart, Event, Text
from proxy.core.run import CompletionRun, StreamError
from proxy.server.sse import LastWrite

DONE = b"data: [DONE]\n\n"


class ChoiceDeltas:
    """Turns one choice's events into a chat delta (keys in OpenAI's order): a dict, or for a
    lone piece of continuing text its JSON directly."""

    def __init__(self, include_reasoning: bool, mirror_reasoning_content: bool) -> None:
        self._include_reasoning = include_reasoning
        self._mirror = mirror_reasoning_content
        # The item the last text of each family came from, to put "\n" between messages.
        self._last_item = {"reasoning": -1, "content": -1}

    def lone_text(self, event: Event) -> bytes | None:
        """The `"delta":{...}` JSON of a step that is one piece of text continuing the message
        its kind last came from: most of a streamed answer's chunks, written with one string
        encode instead of a dict built and encoded. None for anything else (`delta` then
        renders it); both give the same bytes (tests/proxy/test_chat_render.py)."""
        if type(event) is not Text or self._last_item[event.kind] != event.item:
            return None
        if event.kind != "reasoning":
            return b'"delta":{"content":' + orjson.dumps(event.text) + b"}"
        if not self._include_reasoning:
            return None
        text = orjson.dumps(event.text)
        if self._mirror:
            return b'"delta":{"reasoning":' + text + b',"reasoning_content":' + text + b"}"
        return b'"delta":{"reasoning":' + text + b"}"

    def delta(self, events: list) -> dict | None:
        content: list[str] = []
        reasoning: list[str] = []
        calls: list[dict] = []
        for event in events:
            if type(event) is Text:
                pieces = reasoning if event.kind == "reasoning" else content
                last = self._last_item[event.kind]
                if last != event.item:
                    if last != -1:
                        pieces.append("\n")
                    self._last_item[event.kind] = event.item
                pieces.append(event.text)
            elif type(event) is CallStart:
                calls.append(
                    {
                        "index": event.call,
                        "id": event.id,
                        "type": "function",
                        "function": {"name": event.name, "arguments": event.arguments},
                    }
                )
            elif type(event) is CallArguments:
                if calls and calls[-1]["index"] == event.call:
                    calls[-1]["function"]["arguments"] += event.text
                else:
                    calls.append({"index": event.call, "function": {"arguments": event.text}})
        delta: dict = {}
        if content:
            delta["content"] = "".join(content)
        if reasoning and self._include_reasoning:
            text = "".join(reasoning)
            delta["reasoning"] = text
            if self._mirror:
                delta["reasoning_content"] = text
        if calls:
            delta["tool_calls"] = calls
        return delta or None


class ChatChunks:
    """One streamed chat completion's SSE bytes: role chunks, deltas, finishes, usage, [DONE]."""

    def __init__(
        self, run: CompletionRun, *, include_usage: bool, mirror_reasoning_content: bool = True
    ) -> None:
        plan = run.plan
        self._run = run
        self._include_usage = include_usage
        head = orjson.dumps(
            {
                "id": plan.completion_id,
                "object": "chat.completion.chunk",
                "created": plan.created,
                "model": plan.model,
            }
        )
        # b'data: {"id":…,"model":"m","choices":[{"index":' — the delta follows the index.
        self._head = b"data: " + head[:-1] + b',"choices":[{"index":'
        self._tail = b"]" + (b',"usage":null' if include_usage else b"") + b"}\n\n"
        self._usage_head = b"data: " + head[:-1] + b',"choices":[],"usage":'
        # A text-only chunk of choice i: heads[i] + `"delta":{...}` + plain_tail.
        self._heads = [self._head + str(i).encode() + b"," for i in range(plan.sampling.n)]
        self._plain_tail = b',"logprobs":null,"finish_reason":null}' + self._tail
        self._choices = [
            ChoiceDeltas(plan.include_reasoning, mirror_reasoning_content)
            for _ in range(plan.sampling.n)
        ]

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The chunks, those the run yields at once (`Step.more`) joined into one write: the
        role chunks go with the first step's, the last text with its finish, usage and
        `[DONE]`."""
        out = [
            self._chunk(index, {"role": "assistant", "content": ""}, None, None)
            for index in range(self._run.plan.sampling.n)
        ]
        async for item in self._run.steps():
            if isinstance(item, StreamError):
                out.append(b"data: " + orjson.dumps(item.error.body()) + b"\n\n")
                continue
            events, piece = item.events, None
            if len(events) == 1 and item.finish is None and item.logprobs is None:
                piece = self._choices[item.choice].lone_text(events[0])
            if piece is not None:
                out.append(self._heads[item.choice] + piece + self._plain_tail)
            else:
                delta = self._choices[item.choice].delta(events)
                if delta is not None or item.finish is not None or item.logprobs:
                    out.append(self._chunk(item.choice, delta or {}, item.logprobs, item.finish))
            if out and not item.more:
                yield b"".join(out)
                out = []
        if self._include_usage and self._run.usage is not None:
            usage = orjson.dumps(usage_out(self._run.usage).model_dump())
            out.append(self._usage_head + usage + b"}\n\n")
        out.append(DONE)
        yield LastWrite(b"".join(out))

    def _chunk(
        self,
        index: int,
        delta: dict,
        logprobs: list[TokenLogprob] | None,
        finish: str | None,
    ) -> bytes:
        rest = {
            "delta": delta,
            "logprobs": (
                ChoiceLogprobs(content=logprobs).model_dump() if logprobs is not None else None
            ),
            "finish_reason": finish,
        }
        return self._heads[index] + orjson.dumps(rest)[1:] + self._tail


async def fold(run: CompletionRun, *, mirror_reasoning_content: bool = True) -> ChatCompletion:
    """The non-streaming response: the steps summed up (errors are raised)."""
    n = run.plan.sampling.n
    renderers = [
        ChoiceDeltas(run.plan.include_reasoning, mirror_reasoning_content) for _ in range(n)
    ]
    content: list[list[str]] = [[] for _ in range(n)]
    reasoning: list[list[str]] = [[] for _ in range(n)]
    calls: list[dict[int, ToolCallOut]] = [{} for _ in range(n)]
    logprobs: list[list[TokenLogprob] | None] = [None] * n
    finish: list[str | None] = [None] * n
    async for step in run.steps():
        if isinstance(step, StreamError):
            raise step.error
        i = step.choice
        if step.logprobs:
            logprobs[i] = (logprobs[i] or []) + step.logprobs
        for event in step.events:
            if type(event) is CallStart:
                calls[i][event.call] = ToolCallOut(
                    id=event.id,
                    function=FunctionCallOut(name=event.name, arguments=event.arguments),
                )
            elif type(event) is CallArguments:
                calls[i][event.call].function.arguments += event.text
        delta = renderers[i].delta([e for e in step.events if type(e) is Text])
        if delta is not None:
            content[i].append(delta.get("content", ""))
            reasoning[i].append(delta.get("reasoning", ""))
        if step.finish is not None:
            finish[i] = step.finish
    usage = run.usage
    assert usage is not None
    forced_call = run.plan.rules.tool_choice in ("required", "named")
    choices = []
    for i in range(n):
        text = "".join(content[i])
        thought = "".join(reasoning[i]) or None
        message = AssistantMessageOut(
            content=text if text or forced_call else None,
            reasoning=thought,
            reasoning_content=thought if mirror_reasoning_content else None,
            tool_calls=[calls[i][k] for k in sorted(calls[i])] or None,
        )
        choice_logprobs = None
        if run.plan.sampling.logprobs is not None:
            choice_logprobs = ChoiceLogprobs(content=logprobs[i] or [])
        choices.append(
            Choice(index=i, message=message, logprobs=choice_logprobs, finish_reason=finish[i])
        )
    return ChatCompletion(
        id=run.plan.completion_id,
        created=run.plan.created,
        model=run.plan.model,
        choices=choices,
        usage=usage_out(usage),
    )
