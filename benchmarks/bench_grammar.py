"""The cost of the tool-call grammar per request: ours against vLLM's layout, in one process.

For 1, 8 and 64 function tools under tool_choice "auto" (free reasoning, then a schema-valid
call to a declared tool or a free answer), measures:

* build: what the proxy does per request before the engine sees it (build the structural tag
  and check it compiles). "cold" is a tool set seen for the first time, "cached" a repeat (our
  build is cached by its inputs; the reference layout has no cache);
* engine compile: xgrammar's tokenizer-aware compile of that tag with the demo model's
  o200k_harmony tokenizer, as vLLM's xgrammar backend does it (vLLM caches it by the tag's text,
  so only a new tool set pays it);

for our layout (each tool's JSON body twice: role-side and channel-side recipients) and for the
layout vLLM's Harmony parser builds (every header variant spelled out: 12 JSON bodies per tool).
Prints milliseconds and the ratio reference/ours.

    python benchmarks/bench_grammar.py
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import xgrammar
from xgrammar import structural_tag as st

from proxy.core.grammar import CallSpec, FinalSpec, _cached_tag, canonical_json, structural_tag


def tool_schema(i: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            f"query_{i}": {"type": "string", "description": "What to look for"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            "mode": {"type": "string", "enum": ["fast", "exact", "fuzzy"]},
            "filters": {"type": "array", "items": {"type": "string"}},
        },
        "required": [f"query_{i}"],
        "additionalProperties": False,
    }


def ours(n: int, salt: str) -> str:
    calls = tuple(
        CallSpec(f"functions.tool_{i}{salt}", canonical_json(tool_schema(i))) for i in range(n)
    )
    return structural_tag(calls, FinalSpec(), preamble=True)


def reference(n: int, salt: str) -> str:
    """vLLM 0.32's `get_harmony_structural_tag` layout (vllm/parser/harmony.py), for auto."""
    end = ["<|end|>", ""]
    channels = ["<|channel|>commentary", "<|channel|>analysis", "<|channel|>final"]
    begins = [
        " to=functions.{name}{channel}{constrain}<|message|>",
        "{channel} to=functions.{name}{constrain}<|message|>",
    ]
    tags: list[Any] = [
        st.TagFormat(
            begin=b.format(name=f"tool_{i}{salt}", channel=c, constrain=k),
            content=st.JSONSchemaFormat(json_schema=tool_schema(i)),
            end=end,
        )
        for i in range(n)
        for b in begins
        for k in (" json", " <|constrain|>json")
        for c in channels
    ]
    tags += [
        st.TagFormat(begin=f"<|channel|>final{k}<|message|>", content=st.AnyTextFormat(), end=end)
        for k in (" json", " <|constrain|>json", "")
    ]
    optional = [
        st.OptionalFormat(
            content=st.SequenceFormat(
                elements=[
                    st.TagFormat(
                        begin=f"<|channel|>{ch}<|message|>",
                        content=st.AnyTextFormat(),
                        end="<|end|>",
                    ),
                    st.ConstStringFormat(value="<|start|>assistant"),
                ]
            )
        )
        for ch in ("analysis", "commentary")
    ]
    tag = st.StructuralTag(
        format=st.SequenceFormat(elements=[*optional, st.OrFormat(elements=tags)])
    )
    text = json.dumps(tag.model_dump())
    xgrammar.Grammar.from_structural_tag(text)
    return text


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def tokenizer_info() -> xgrammar.TokenizerInfo:
    from transformers import AutoTokenizer

    from proxy.demo_model import ensure_demo_model

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_demo_model()))
    return xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=201088)


def main() -> None:
    compiler = xgrammar.GrammarCompiler(tokenizer_info(), cache_enabled=False)
    compiler.compile_structural_tag(reference(1, "_warm-up"))  # first compile builds tables
    counter = iter(range(10**9))
    rows = []
    for n in (1, 8, 64):
        repeat = 3 if n == 64 else 10
        row: dict[str, float] = {}
        for name, build in (("ours", ours), ("vllm", reference)):
            row[f"{name} build cold"] = timed(
                lambda b=build, n=n: b(n, f"_{next(counter)}"), repeat
            )
            fixed = build(n, "")
            row[f"{name} build cached"] = timed(lambda b=build, n=n: b(n, ""), repeat)
            compile_repeat = 1 if n == 64 else 3
            row[f"{name} engine compile"] = timed(
                lambda f=fixed: compiler.compile_structural_tag(f), compile_repeat
            )
            row[f"{name} tag KB"] = len(fixed) / 1024
        rows.append((n, row))
        _cached_tag.cache_clear()

    print(f"{'tools':>5}  {'measure':<16} {'ours':>10} {'vLLM layout':>12} {'ratio':>8}")
    for n, row in rows:
        for measure in ("build cold", "build cached", "engine compile", "tag KB"):
            a, b = row[f"ours {measure}"], row[f"vllm {measure}"]
            unit = "" if measure == "tag KB" else " ms"
            print(f"{n:>5}  {measure:<16} {a:>8.2f}{unit:3} {b:>9.2f}{unit:3} {b / a:>7.1f}x")


if __name__ == "__main__":
    main()
