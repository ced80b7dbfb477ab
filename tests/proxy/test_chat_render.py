"""The hand-built chunk bytes equal what the pydantic chunk models serialise to, key order too."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from proxy.api.chat_stream import ChatChunks, ChoiceDeltas
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
    def __init__(
        self, steps: list, *, n: int = 1, mirror: bool = True, include_reasoning: bool = True
    ) -> None:
        self.plan = SimpleNamespace(
            completion_id="chatcmpl-x\u00e9",
            created=1700000000,
            model="gpt-oss-demo",
            sampling=SimpleNamespace(n=n),
            include_reasoning=include_reasoning,
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


_texts = st.text(st.characters(max_codepoint=0x2FFF) | st.sampled_from('"\\\n\u2028'))
_lone_steps = st.builds(
    lambda choice, kind, item, text, logprobs, more: Step(
        choice, [Text(kind, item, text)], logprobs=logprobs, more=more
    ),
    st.integers(0, 1),
    st.sampled_from(["reasoning", "content"]),
    st.integers(0, 2),
    _texts,
    st.sampled_from([None, [], [LOGPROB]]),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(_lone_steps | st.sampled_from([Step(0, [], finish="stop")]), max_size=12),
    mirror=st.booleans(),
    include_reasoning=st.booleans(),
    include_usage=st.booleans(),
)
def test_the_lone_text_shortcut_writes_what_the_general_delta_writes(
    steps, mirror, include_reasoning, include_usage
):
    """Chunks of one piece of text skip the delta dict (`ChoiceDeltas.lone_text`): with the
    shortcut turned off, every write is byte for byte the same, and so are the writes' bounds."""

    def writes(shortcut: bool) -> list[bytes]:
        run = FakeRun(steps, n=2, mirror=mirror, include_reasoning=include_reasoning)
        chunks = ChatChunks(run, include_usage=include_usage, mirror_reasoning_content=mirror)

        async def collect() -> list[bytes]:
            return [bytes(w) async for w in chunks.events()]

        with pytest.MonkeyPatch.context() as patch:
            if not shortcut:
                patch.setattr(ChoiceDeltas, "lone_text", lambda self, event: None)
            return asyncio.run(collect())

    assert writes(True) == writes(False)


def test_the_lone_text_shortcut_is_taken_for_plain_text():
    """The shortcut is not dead code: a continuing piece of text gets it, a new item does not."""
    deltas = ChoiceDeltas(include_reasoning=True, mirror_reasoning_content=True)
    assert deltas.lone_text(Text("content", 0, "a")) is None  # the first text of an item
    assert deltas.delta([Text("content", 0, "a")]) == {"content": "a"}
    assert deltas.lone_text(Text("content", 0, 'b"')) == b'"delta":{"content":"b\\""}'
    assert deltas.lone_text(Text("reasoning", 1, "r")) is None


def test_hidden_reasoning_is_never_encoded_by_the_shortcut():
    """Hidden reasoning writes nothing on either path, whatever its text (orjson refuses a lone
    surrogate, which the general path never encodes either)."""
    deltas = ChoiceDeltas(include_reasoning=False, mirror_reasoning_content=True)
    assert deltas.delta([Text("reasoning", 0, "a")]) is None
    assert deltas.lone_text(Text("reasoning", 0, "\ud800")) is None
