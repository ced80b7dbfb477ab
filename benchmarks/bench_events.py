"""The per-token cost of the streaming core, without HTTP: parse, assemble, render.

A realistic completion (reasoning, then an answer) is fed one token per engine step,
as a decoding engine delivers it, through:

* `parser`: our recovering StreamableParser alone, and the reference `openai_harmony` one;
* `assembler`: DeltaAssembler (parser + routing into neutral events);
* `chat`: assembler + chat chunk bytes (proxy/api/chat_stream.py: pre-built prefix, orjson);
* `chat (pydantic)`: assembler + the previous way, a pydantic chunk per step dumped with
  json.dumps (kept here as the baseline the rewrite is measured against);
* `responses`: assembler + Responses events (proxy/api/responses/output.py).

Prints microseconds per token and ratios measured in the same run.

    python benchmarks/bench_events.py [--tokens 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harmony._vocab import write_verified_vocab

if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:
    _vocab_dir = Path(tempfile.gettempdir()) / "harmony-proxy-bench-vocab"
    write_verified_vocab(_vocab_dir)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(_vocab_dir)

import openai_harmony  # noqa: E402

from harmony import Role, StreamableParser  # noqa: E402
from proxy.api.chat_schema import (  # noqa: E402
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
)
from proxy.api.chat_stream import ChoiceDeltas  # noqa: E402
from proxy.api.responses.output import ResponseBuilder  # noqa: E402
from proxy.core.assembler import DeltaAssembler  # noqa: E402
from proxy.core.conversation import load_encoding  # noqa: E402
from proxy.core.events import CallArguments, CallStart, Step, Text  # noqa: E402
from proxy.core.tool_names import ToolNames  # noqa: E402
from proxy.core.tools import function_tool  # noqa: E402

STOPS = (200002, 200012, 199999)
SENTENCE = (
    "We compare the forecast for Zürich and São Paulo, then convert 23.5 °C to °F; "
    "the user also asked about trade-offs between priors and calibration. "
)


def completion(enc: object, tokens: int) -> list[int]:
    per = len(enc.encode(SENTENCE))  # type: ignore[attr-defined]
    n = max(2, tokens // per)
    # Reasoning then an answer: every token is streamed (a call would end the completion).
    text = (
        f"<|channel|>analysis<|message|>{SENTENCE * (n // 2)}<|end|>"
        f"<|start|>assistant<|channel|>final<|message|>{SENTENCE * (n - n // 2)}<|return|>"
    )
    return enc.encode(text, allowed_special="all")  # type: ignore[attr-defined]


def assembler() -> DeltaAssembler:
    return DeltaAssembler(
        load_encoding(), ToolNames(["get_weather"]), stop_token_ids=STOPS, calls_enforced=True
    )


def run_parser(tokens: list[int]) -> None:
    parser = StreamableParser(load_encoding(), Role.ASSISTANT, recover=True)
    for token in tokens:
        parser.process(token)
        _ = parser.last_content_delta, parser.current_channel, parser.current_recipient


REFERENCE_ENC = None


def run_reference_parser(tokens: list[int]) -> None:
    parser = openai_harmony.StreamableParser(REFERENCE_ENC, openai_harmony.Role.ASSISTANT)
    for token in tokens:
        parser.process(token)
        _ = parser.last_content_delta, parser.current_channel, parser.current_recipient


def run_assembler(tokens: list[int]) -> None:
    a = assembler()
    for token in tokens:
        a.feed([token])
    a.finish()


def run_chat(tokens: list[int]) -> None:
    a = assembler()
    render = ChoiceDeltas(True, True)
    head = b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":'
    import orjson

    tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    for token in tokens:  # as ChatChunks.events renders a step
        events = a.feed([token])
        piece = render.lone_text(events[0]) if len(events) == 1 else None
        if piece is not None:
            _ = head + b"0," + piece + tail
            continue
        delta = render.delta(events)
        if delta is not None:
            _ = (
                head
                + b"0,"
                + orjson.dumps({"delta": delta, "logprobs": None, "finish_reason": None})[1:]
            )


def run_chat_pydantic(tokens: list[int]) -> None:
    """The pre-rewrite rendering: pydantic Delta and chunk models, model_dump, json.dumps."""
    a = assembler()
    for token in tokens:
        events = a.feed([token])
        if not events:
            continue
        content, reasoning, calls = [], [], []
        for e in events:
            if type(e) is Text:
                (reasoning if e.kind == "reasoning" else content).append(e.text)
            elif type(e) is CallStart:
                calls.append(
                    ToolCallDelta(
                        index=e.call,
                        id=e.id,
                        type="function",
                        function=FunctionCallDelta(name=e.name, arguments=e.arguments),
                    )
                )
            elif type(e) is CallArguments:
                calls.append(
                    ToolCallDelta(index=e.call, function=FunctionCallDelta(arguments=e.text))
                )
        delta = Delta(
            content="".join(content) or None,
            reasoning="".join(reasoning) or None,
            reasoning_content="".join(reasoning) or None,
            tool_calls=calls or None,
        )
        chunk = ChatCompletionChunk(
            id="chatcmpl-x", created=1, model="m", choices=[ChunkChoice(index=0, delta=delta)]
        )
        data = chunk.model_dump(exclude={"usage"})
        data["choices"][0]["delta"] = delta.model_dump(exclude_none=True)
        _ = json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def run_responses(tokens: list[int]) -> None:
    a = assembler()
    tool = function_tool(
        "get_weather",
        "",
        None,
        strict=False,
        param="tools[0]",
        name_param="n",
        parameters_param="p",
    )
    builder = ResponseBuilder({"id": "resp_x"}, {"get_weather": tool}, seal=None, stream=True)
    builder.begin()
    for token in tokens:
        builder.step(Step(0, a.feed([token])))
    builder.step(Step(0, a.finish()))


def best_of(fn: Callable[[list[int]], None], tokens: list[int], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(tokens)
        times.append(time.perf_counter() - start)
    return min(times) / len(tokens) * 1e6


def main() -> None:
    global REFERENCE_ENC
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    REFERENCE_ENC = openai_harmony.load_harmony_encoding(
        openai_harmony.HarmonyEncodingName.HARMONY_GPT_OSS
    )
    tokens = completion(load_encoding(), args.tokens)
    rows = [
        ("parser (reference openai_harmony)", run_reference_parser),
        ("parser (ours, recovering)", run_parser),
        ("assembler (parser + events)", run_assembler),
        ("chat chunks (pydantic + json.dumps, before)", run_chat_pydantic),
        ("chat chunks (orjson bytes, now)", run_chat),
        ("responses events", run_responses),
    ]
    results = {name: best_of(fn, tokens, args.repeat) for name, fn in rows}
    print(
        f"{len(tokens)} tokens, one per step; best of {args.repeat}; load {os.getloadavg()[0]:.1f}"
    )
    for name, us in results.items():
        print(f"  {name:46s} {us:7.2f} us/token")
    before = results["chat chunks (pydantic + json.dumps, before)"]
    now = results["chat chunks (orjson bytes, now)"]
    print(f"  chat rendering before/now: {before / now:.2f}x")
    print(
        "  our parser / reference parser: "
        f"{results['parser (ours, recovering)'] / results['parser (reference openai_harmony)']:.2f}x"
    )


if __name__ == "__main__":
    main()
