"""The cost of the tool-call grammar per request: ours against vLLM's layout, in one process.

For 1, 8 and 64 function tools under tool_choice "auto" (free reasoning, then a schema-valid
call to a declared tool or a free answer), measures xgrammar's tokenizer-aware engine compile of
the structural tag with the demo model's o200k_harmony tokenizer, for:

* vLLM: the layout vLLM 0.32's Harmony parser builds (every header variant spelled out: 12 JSON
  bodies per tool, no exclusions: a JSON string there may swallow a Harmony marker);
* before: our layout at `--before` (default: the commit before issue 21's grammar work), loaded
  from git: each tool's body twice, nine markers excluded from free text, whitespace runs <= 64;
* ours: this checkout (compact JSON over one shared JSON core, `<|` excluded from free text
  and JSON strings, one header alternative per tool: proxy/core/json_grammar.py);
* ours, not compact: the same layout with xgrammar's json_schema element per tool instead
  (`excludes: ["<|"]`, whitespace runs <= 64): the "without compact JSON" column;
* ours, unguarded: ours with plain JSON strings (a `<|` allowed in them, as in vLLM's layout):
  what the marker guard costs. Not something we serve.

Two tables, each compile of a tool set the engine has not seen (new tool names every time):

* running engine: the compiler as vLLM's xgrammar backend makes it (8 threads, cache on, 512
  MiB). Its whole-grammar cache is keyed by the tag's text, so a known tool set costs nothing;
  its rule-level cache reuses the token masks of any rule it has hashed before, in any grammar.
  Each layout first compiles one other tool set (what any earlier request did), then the
  measured ones. This is what a request with a new tool set waits for on a serving engine.
* cold engine: the cache off: what the first grammar of an engine's life costs.

Each figure is the minimum of `--repeat` compiles (the minimum, because the machine may be
shared; compare the ratios of one run). Also prints our per-request build (cached by tool set).

    python benchmarks/bench_grammar.py [--repeat 3] [--before c0745bf]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import xgrammar
from xgrammar import structural_tag as st

from proxy.core import grammar
from proxy.core.grammar import CallSpec, FinalSpec, canonical_json, structural_tag

# xgrammar's own JSON string rule (compact): one state, no `<|` exclusion.
UNGUARDED_STRINGS = (
    r'basic_string_sub ::= ("\"" | [^\0-\x1f\"\\] basic_string_sub'
    r' | "\\" basic_escape basic_string_sub) (=([,}\]:]))'
    "\n"
)


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
    """Minimum milliseconds of `repeat` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return min(samples)


def tokenizer_info() -> xgrammar.TokenizerInfo:
    from transformers import AutoTokenizer

    from proxy.demo_model import ensure_demo_model

    tokenizer = AutoTokenizer.from_pretrained(str(ensure_demo_model()))
    return xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=201088)


def before_module(rev: str) -> ModuleType:
    """proxy/core/grammar.py as it was at `rev`, imported under another name."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:proxy/core/grammar.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = ModuleType("grammar_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:proxy/core/grammar.py", "exec"), module.__dict__)  # noqa: S102
    return module


def tag_of(module: Any, n: int, salt: str) -> str:
    calls = tuple(
        module.CallSpec(f"functions.tool_{i}{salt}", canonical_json(tool_schema(i)))
        for i in range(n)
    )
    module._cached_tag.cache_clear()
    return module.structural_tag(calls, module.FinalSpec(), preamble=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default="c0745bf")
    args = parser.parse_args()
    before = before_module(args.before)
    info = tokenizer_info()

    def ours_not_compact(n: int, salt: str) -> str:
        """Our layout with xgrammar's json_schema elements (excludes, whitespace runs <= 64)."""
        saved = grammar.compact_rules, grammar._MAX_JSON_WHITESPACE
        grammar.compact_rules, grammar._MAX_JSON_WHITESPACE = lambda *_: None, 64
        try:
            return tag_of(grammar, n, salt)
        finally:
            grammar.compact_rules, grammar._MAX_JSON_WHITESPACE = saved

    def ours_unguarded(n: int, salt: str) -> str:
        """Our layout with JSON strings that may hold `<|` (vLLM's strings)."""
        saved = grammar.SHARED_RULES
        grammar.SHARED_RULES = UNGUARDED_STRINGS + "\n".join(
            line
            for line in saved.splitlines()
            if not line.startswith(("basic_string_sub ", "basic_lts "))
        )
        try:
            return tag_of(grammar, n, salt)
        finally:
            grammar.SHARED_RULES = saved

    layouts: dict[str, Callable[[int, str], str]] = {
        "vLLM": reference,
        "before": lambda n, salt: tag_of(before, n, salt),
        "ours": lambda n, salt: tag_of(grammar, n, salt),
        "ours, not compact": ours_not_compact,
        "ours, unguarded": ours_unguarded,
    }
    engines = {
        "running engine (vLLM's compiler: rule-level cache on), a new tool set": (
            xgrammar.GrammarCompiler(
                info, max_threads=8, cache_enabled=True, cache_limit_bytes=512 << 20
            )
        ),
        "cold engine (cache off)": xgrammar.GrammarCompiler(
            info, max_threads=8, cache_enabled=False
        ),
    }
    for title, compiler in engines.items():
        compiler.compile_structural_tag(reference(1, "_warm-up"))  # the first compile builds tables
        for name, build in layouts.items():
            compiler.compile_structural_tag(build(1, f"_{name.replace(' ', '_')}_earlier"))
        print(f"\n{title}: compile ms, min of {args.repeat}; ratio = layout / vLLM layout")
        print(f"{'tools':>5} " + " ".join(f"{name:>18}" for name in layouts) + f" {'build':>9}")
        for n in (1, 8, 64):
            cells = {}
            for name, build in layouts.items():
                tags = iter(
                    [build(n, f"_{name.replace(' ', '_')}_{r}") for r in range(args.repeat)]
                )
                cells[name] = timed(
                    lambda c=compiler, t=tags: c.compile_structural_tag(next(t)), args.repeat
                )
            ours(n, "")
            build_ms = timed(lambda n=n: ours(n, ""), 10)
            row = " ".join(
                f"{ms:>9.0f} ({ms / cells['vLLM']:>4.2f}x)".rjust(18) for ms in cells.values()
            )
            print(f"{n:>5} {row} {build_ms:>7.2f}ms", flush=True)


if __name__ == "__main__":
    main()
