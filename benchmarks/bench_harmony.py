"""Benchmark `harmony` against the reference `openai_harmony` (0.0.8) in one process.

Two workloads from the serving path:
* streaming parse: a ~6k-token completion (analysis, tool call, final answer) fed one token at a
  time to a StreamableParser, reading `last_content_delta` and `current_channel` after each token
  (what the delta assembler does) -> tokens/s;
* rendering: a 12-message conversation with 8 function tools rendered for completion ->
  renders/s. "warm" renders one conversation repeatedly (a server seeing the same tools on every
  request); "cold" changes a tool description on every render so no text cache can help.

Prints each figure for ours and the reference, and the ratio ours/reference.

    python benchmarks/bench_harmony.py           # full run (~1 min)
    python benchmarks/bench_harmony.py --quick   # a few seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from harmony._vocab import write_verified_vocab

if "TIKTOKEN_ENCODINGS_BASE" not in os.environ:  # the reference loads its vocabulary only from here
    _vocab_dir = Path(tempfile.gettempdir()) / "harmony-proxy-bench-vocab"
    write_verified_vocab(_vocab_dir)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(_vocab_dir)

import openai_harmony  # noqa: E402

import harmony  # noqa: E402

LIBRARIES: dict[str, ModuleType] = {"ours": harmony, "reference": openai_harmony}

PARAGRAPH = (
    "We need to compare the forecast for Zürich and São Paulo, then convert 23.5 °C to °F "
    "(23.5 × 9/5 + 32 = 74.3). The user also asked about naïve Bayes vs. logistic regression; "
    "résumé the trade-offs: priors, calibration, 特征独立性, and data size. Emoji check 😊👍🏽🚀. "
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # code survives\n"
)


def completion_text(target_tokens: int, enc: Any) -> str:
    """Analysis, a function call, and a final answer, sized to about `target_tokens`."""
    per_paragraph = len(enc.encode(PARAGRAPH))
    paragraphs = max(1, (target_tokens - 80) // per_paragraph)
    analysis = PARAGRAPH * (paragraphs // 2)
    final = PARAGRAPH * (paragraphs - paragraphs // 2)
    return (
        f"<|channel|>analysis<|message|>{analysis}<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"location":"Zürich","unit":"celsius"}<|call|>'
        f"<|start|>assistant<|channel|>final<|message|>{final}<|return|>"
    )


def stream_once(lib: ModuleType, enc: Any, tokens: list[int]) -> None:
    parser = lib.StreamableParser(enc, lib.Role.ASSISTANT)
    for token in tokens:
        parser.process(token)
        _ = parser.last_content_delta
        _ = parser.current_channel


TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        },
        "required": ["location"],
    },
    {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "default": 10},
            "filters": {"type": "array", "items": {"type": "string"}},
        },
    },
    {
        "type": "object",
        "properties": {
            "to": {"type": "string"},
            "subject": {"type": "string"},
            "body": {"type": "string", "description": "Plain text"},
            "cc": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["to", "body"],
    },
    {
        "type": "object",
        "properties": {
            "start": {"type": "string", "description": "ISO date"},
            "end": {"type": "string"},
            "attendees": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"email": {"type": "string"}, "optional": {"type": "boolean"}},
                },
            },
        },
    },
    {
        "type": "object",
        "properties": {
            "expression": {"type": "string"},
            "precision": {
                "oneOf": [{"type": "integer"}, {"type": "null"}],
                "description": "digits",
            },
        },
    },
    {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "mode": {"type": "string", "enum": ["r", "w", "a"]},
            "encoding": {"type": "string", "default": "utf-8"},
        },
    },
    {
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "quantity": {"type": "number", "default": 1.0},
            "options": {"type": "object", "properties": {"gift": {"type": "boolean"}}},
        },
    },
    {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "target": {"type": "string", "description": "Language code", "nullable": True},
        },
        "required": ["text"],
    },
]


def conversation(lib: ModuleType, tag: str = "") -> Any:
    """System + developer (8 function tools) + a 10-message tool-using exchange = 12 messages."""
    tools = [
        lib.ToolDescription.new(f"tool_{i}", f"Does task number {i}.{tag}", parameters=schema)
        for i, schema in enumerate(TOOL_SCHEMAS)
    ]
    system = (
        lib.SystemContent.new()
        .with_reasoning_effort(lib.ReasoningEffort.HIGH)
        .with_conversation_start_date("2025-06-28")
    )
    developer = (
        lib.DeveloperContent.new().with_instructions("Be concise.").with_function_tools(tools)
    )
    role, message = lib.Role, lib.Message.from_role_and_content
    call = '{"location":"Paris"}'
    tool_author = lib.Author.new(role.TOOL, "functions.tool_0")
    messages = [
        message(role.SYSTEM, system),
        message(role.DEVELOPER, developer),
        message(role.USER, "What's the weather in Paris, and convert it to Fahrenheit?"),
        message(role.ASSISTANT, "Need weather first.").with_channel("analysis"),
        message(role.ASSISTANT, call)
        .with_channel("commentary")
        .with_recipient("functions.tool_0")
        .with_content_type("<|constrain|>json"),
        lib.Message.from_author_and_content(tool_author, '{"temp": 21, "unit": "celsius"}')
        .with_channel("commentary")
        .with_recipient("assistant"),
        message(role.ASSISTANT, "21 C is 69.8 F.").with_channel("analysis"),
        message(role.ASSISTANT, "It is 21 °C (69.8 °F) in Paris.").with_channel("final"),
        message(role.USER, "And tomorrow?"),
        message(role.ASSISTANT, "Call again.").with_channel("analysis"),
        message(role.ASSISTANT, call)
        .with_channel("commentary")
        .with_recipient("functions.tool_0")
        .with_content_type("<|constrain|>json"),
        lib.Message.from_author_and_content(tool_author, '{"temp": 18, "unit": "celsius"}')
        .with_channel("commentary")
        .with_recipient("assistant"),
    ]
    assert len(messages) == 12
    return lib.Conversation.from_messages(messages)


def best_rate(run: Callable[[], None], units: int, seconds: float) -> float:
    """Units per second of the best of several timed rounds (least disturbed by noise)."""
    run()  # warm-up (caches, lazy tables)
    rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(rates) < 3:
        start = time.perf_counter()
        run()
        rates.append(units / (time.perf_counter() - start))
    return max(rates) if len(rates) < 5 else statistics.quantiles(rates, n=10)[-1]


def report(title: str, unit: str, rates: dict[str, float]) -> None:
    ratio = rates["ours"] / rates["reference"]
    print(f"{title}")
    for name, rate in rates.items():
        print(f"  {name:<10} {rate:>14,.1f} {unit}")
    print(f"  ratio ours/reference: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (a few seconds)")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 5.0

    encodings = {
        name: lib.load_harmony_encoding("HarmonyGptOss") for name, lib in LIBRARIES.items()
    }
    text = completion_text(6000, encodings["reference"])
    tokens = encodings["reference"].encode(text, allowed_special="all")
    assert tokens == encodings["ours"].encode(text, allowed_special="all")
    print(f"streaming completion: {len(tokens)} tokens; rendering: 12 messages, 8 function tools")

    stream_rates = {
        name: best_rate(
            lambda lib=lib, enc=encodings[name]: stream_once(lib, enc, tokens), len(tokens), seconds
        )
        for name, lib in LIBRARIES.items()
    }
    report(
        "streaming parse (process + last_content_delta + current_channel per token)",
        "tokens/s",
        stream_rates,
    )

    batch = 20
    warm = {name: conversation(lib) for name, lib in LIBRARIES.items()}
    rendered = {
        name: encodings[name].render_conversation_for_completion(
            warm[name], LIBRARIES[name].Role.ASSISTANT
        )
        for name in LIBRARIES
    }
    assert rendered["ours"] == rendered["reference"], "renders differ: fix before benchmarking"

    def render_warm(name: str) -> None:
        enc, convo, role = encodings[name], warm[name], LIBRARIES[name].Role.ASSISTANT
        for _ in range(batch):
            enc.render_conversation_for_completion(convo, role)

    render_rates = {
        name: best_rate(lambda n=name: render_warm(n), batch, seconds) for name in LIBRARIES
    }
    report(
        "render_conversation_for_completion, same tools every request (warm)",
        "renders/s",
        render_rates,
    )
    for name, rate in render_rates.items():
        print(f"  {name:<10} {1000 / rate:>10.3f} ms per render")

    counter = iter(range(10**9))
    cold_rates: dict[str, float] = {}
    for name, lib in LIBRARIES.items():
        enc, role = encodings[name], lib.Role.ASSISTANT
        elapsed, renders = 0.0, 0
        while elapsed < seconds:
            convos = [conversation(lib, f" v{next(counter)}") for _ in range(batch)]
            start = time.perf_counter()  # building the objects is not timed
            for convo in convos:
                enc.render_conversation_for_completion(convo, role)
            elapsed += time.perf_counter() - start
            renders += batch
        cold_rates[name] = renders / elapsed
    report(
        "render_conversation_for_completion, new tool texts every request (cold)",
        "renders/s",
        cold_rates,
    )


if __name__ == "__main__":
    main()
