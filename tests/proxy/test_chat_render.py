"""The hand-built chunk bytes equal what the pydantic chunk models serialise to, key order too."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from proxy.api.chat_schema import (
    ChatCompletionChunk,
    ChoiceLogprobs,
    ChunkChoice,
    CompletionTokensDetails,
    Delta,
    FunctionCallDelta,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from proxy.api.chat_stream import ChatChunks
from proxy.core.errors import EngineFailure
from proxy.core.events import CallArguments, CallEnd, CallStart, Step, Text
from proxy.core.events import Usage as CoreUsage
from proxy.core.run import StreamError

USAGE = Usage(
    prompt_tokens=5,
    completion_tokens=7,
    total_tokens=12,
    completion_tokens_details=CompletionTokensDetails(reasoning_tokens=3),
)
LOGPROB = TokenLogprob(token="é", logprob=-0.5, bytes=[195, 169], top_logprobs=[])


class FakeRun:
    def __init__(self, steps: list, *, n: int = 1, mirror: bool = True) -> None:
        self.plan = SimpleNamespace(
            completion_id="chatcmpl-x\u00e9",
            created=1700000000,
            model="gpt-oss-demo",
            sampling=SimpleNamespace(n=n),
            include_reasoning=True,
        )
        self._steps = steps
        self.mirror = mirror
        self.usage = None

    async def steps(self):
        for step in self._steps:
            yield step
        self.usage = CoreUsage(prompt_tokens=5, completion_tokens=7, reasoning_tokens=3)


def rendered(run: FakeRun, include_usage: bool) -> list[str]:
    async def collect() -> list[bytes]:
        return [
            e
            async for e in ChatChunks(
                run, include_usage=include_usage, mirror_reasoning_content=run.mirror
            ).events()
        ]

    writes = asyncio.run(collect())  # (steps yielded at once share a write: `Step.more`)
    assert all(w.startswith(b"data: ") and w.endswith(b"\n\n") for w in writes)
    out = [e + b"\n\n" for w in writes for e in w.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in out)
    return [e[6:-2].decode() for e in out]


def expected_chunk(choice: ChunkChoice, include_usage: bool) -> str:
    chunk = ChatCompletionChunk(
        id="chatcmpl-x\u00e9", created=1700000000, model="gpt-oss-demo", choices=[choice]
    )
    data = chunk.model_dump(exclude={"usage"} if not include_usage else set())
    data["choices"][0]["delta"] = choice.delta.model_dump(exclude_none=True)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def test_chunks_are_byte_identical_to_the_pydantic_models():
    steps = [
        Step(0, [Text("reasoning", 0, "Think "), Text("reasoning", 0, "é")]),
        Step(0, [Text("reasoning", 1, "more")]),
        Step(0, [Text("content", 2, "Hi")], logprobs=[LOGPROB]),
        Step(0, [CallStart(0, 3, "call_1", "get_weather", ""), CallArguments(0, '{"a"')]),
        Step(0, [CallArguments(0, ":1}"), CallEnd(0)], finish="tool_calls"),
    ]
    for include_usage in (False, True):
        out = rendered(FakeRun(steps), include_usage)
        want = [
            ChunkChoice(index=0, delta=Delta(role="assistant", content="")),
            ChunkChoice(index=0, delta=Delta(reasoning="Think é", reasoning_content="Think é")),
            ChunkChoice(index=0, delta=Delta(reasoning="\nmore", reasoning_content="\nmore")),
            ChunkChoice(
                index=0,
                delta=Delta(content="Hi"),
                logprobs=ChoiceLogprobs(content=[LOGPROB]),
            ),
            ChunkChoice(
                index=0,
                delta=Delta(
                    tool_calls=[
                        ToolCallDelta(
                            index=0,
                            id="call_1",
                            type="function",
                            function=FunctionCallDelta(name="get_weather", arguments='{"a"'),
                        )
                    ]
                ),
            ),
            ChunkChoice(
                index=0,
                delta=Delta(
                    tool_calls=[ToolCallDelta(index=0, function=FunctionCallDelta(arguments=":1}"))]
                ),
                finish_reason="tool_calls",
            ),
        ]
        assert out[: len(want)] == [expected_chunk(c, include_usage) for c in want]
        assert out[-1] == "[DONE]"
        if include_usage:
            usage = ChatCompletionChunk(
                id="chatcmpl-x\u00e9", created=1700000000, model="gpt-oss-demo", choices=[]
            )
            usage.usage = USAGE
            assert out[-2] == json.dumps(
                usage.model_dump(), ensure_ascii=False, separators=(",", ":")
            )
            assert len(out) == len(want) + 2
        else:
            assert len(out) == len(want) + 1


def test_several_choices_and_an_error_event():
    error = EngineFailure("boom")
    steps = [
        Step(1, [Text("content", 0, "b")]),
        StreamError(error),
        Step(0, [], finish="stop"),
        Step(1, [], finish="stop"),
    ]
    out = rendered(FakeRun(steps, n=2, mirror=False), False)
    assert json.loads(out[0])["choices"][0]["index"] == 0
    assert json.loads(out[1])["choices"][0]["index"] == 1
    assert out[2] == expected_chunk(ChunkChoice(index=1, delta=Delta(content="b")), False)
    assert json.loads(out[3]) == error.body()
    assert out[4] == expected_chunk(
        ChunkChoice(index=0, delta=Delta(), finish_reason="stop"), False
    )
    assert out[-1] == "[DONE]"
