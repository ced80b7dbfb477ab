"""Harmony-shaped grammars for the engine: xgrammar structural tags, built once per tool set.

A completion is free reasoning (an optional analysis message), an optional commentary preamble,
then one ending: a final answer (free text, or JSON matching a schema) and/or a call to one of
the declared functions with arguments matching its JSON schema. `<|`, the prefix of every
Harmony marker, is excluded from free text and JSON strings: xgrammar sees special tokens as
their text, so without the exclusion a string could swallow `<|end|><|start|>...` and the
grammar's idea of the message would drift from the parser's (a literal `<|` cannot be written
there either).

A call may put its recipient in the role header (` to=functions.x<|channel|>commentary ...`, as
the Harmony renderer writes it) or after the channel (`<|channel|>commentary to=functions.x ...`,
as gpt-oss often generates it). Each tool is one alternative: its header forms, then its body
once. An undeclared recipient (`to=python`, `to=functions.calculator`) cannot be generated.

Arguments and JSON answers are compact JSON, the way gpt-oss writes them (no whitespace between
tokens, numbers of at most 16+16 digits and a two-digit exponent), over one JSON core shared by
every tool of the tag (`proxy/core/json_grammar.py`); a schema that module cannot prove
marker-free falls back to xgrammar's json_schema element with `excludes` (whitespace runs <= 1).
Free strings have no length bound: xgrammar drops maxLength under `excludes`, and a bounded
repeat of the string automaton would cost compile time per tag; the engine's max_tokens bounds
them.

Engine compile: xgrammar's tokenizer-aware compile with the o200k_harmony vocabulary, which a
request with a tool set the engine has not seen waits for (`benchmarks/bench_grammar.py`, min
of 5, this 2-core machine, 2026-12-05, two runs; ratio to vLLM 0.32's own Harmony layout):

| tools | running engine: vLLM | ours                  | cold engine: vLLM | ours                  |
|------:|---------------------:|----------------------:|------------------:|----------------------:|
|     1 |                 8 ms | 6-8 ms (0.81-0.93x)   |          30-31 ms | 55-57 ms (1.83-1.85x) |
|     8 |             36-39 ms | 12 ms (0.30-0.33x)    |        146-151 ms | 57 ms (0.38-0.39x)    |
|    64 |           605-621 ms | 54-76 ms (0.09-0.13x) |      1214-1415 ms | 96-107 ms (0.08x)     |

"Running engine" is the compiler as vLLM's xgrammar backend makes it (cache on), after any
earlier grammar: the table that applies to every tool set but an engine's first. Its
rule-level cache keeps the token masks of every rule it can hash (one that calls only itself
and hashed rules) and reuses them in any later grammar, so what a new tool set pays for is its
own rules: the JSON core and the header pieces (`_HEADER_RULES`) are the same text in every tag
and are reused (the free-text tags are TagDispatch rules, which it recomputes: a few ms). The
two-state `<|` guard of JSON strings is written as one self-recursive rule for that reason
(`proxy/core/json_grammar.py`; as two rules calling each other it cannot be hashed and cost
~30 ms in every compile). Each tool's name is its own rule, so its characters are compiled
once, not once per header form.

"Cold engine" is the cache off: an engine's first grammar. There one tool costs more than
vLLM's layout for the guard: "no `<|`" needs a second string state, and xgrammar computes a
vocabulary-wide token mask per state (bench_grammar's "unguarded" column, our layout with
vLLM's strings, is 0.82-0.84x). xgrammar 0.2.8 has no cheaper form: a lookahead `"<" (=[^|])`
is not enforced, a TagDispatch string with `excludes` compiles to the same two states, and
`Token`/`ExcludeToken` elements do not stop character classes matching a special token's text.
`--warm-tools` with any one set pays that first compile at start-up, for every later set.
Without compact JSON (xgrammar's json_schema element per tool) the layout costs 2.0x vLLM's
cold at 8 tools and 6-7x running: that element copies the JSON rules into every tool.

Caches. The proxy builds a tag (and checks that it compiles) once per tool set per process:
`_cached_tag` is keyed by the tag's inputs, so each `--workers` process builds its own copy on
its first request with that set (milliseconds). The engine compiles and caches by the tag's
text: with the in-process engine, one compile per engine process; with remote replicas, each
replica compiles on the first request with that tool set it receives, and keeps it in its own
cache (vLLM's xgrammar backend cache), so a tool set costs one compile per replica, not per
proxy worker. The tag's text is deterministic for a tool set (canonical schemas, fixed order),
so every worker sends the same text and hits the same engine cache entry; that is also what
lets `--warm-tools FILE` (proxy/server/warm_tools.py) compile known sets before `/ready`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from proxy.core.bounded_cache import MiB, bounded_cache
from proxy.core.json_grammar import SHARED_RULES, compact_rules

# The stop tokens (<|return|>, <|call|>) end a message too; xgrammar refuses stop tokens inside
# a constrained span, so an optional `<|end|>` lets the grammar finish and the engine's stop ids
# take over.
_END = ["<|end|>", ""]
_JSON_CONSTRAINS = (" <|constrain|>json", " json")
_CALL_CHANNELS = ("<|channel|>commentary", "<|channel|>analysis")
# The pieces of a JSON tool's two header forms (`_headers` spells them out) that do not name the
# tool: one rule each, the same text in every tag, so the engine's rule-level cache computes
# their token masks once, not once per tool and tag; only the names are new in a new tool set.
_HEADER_RULES = "\n".join(
    [
        'call_role ::= " to="',
        "call_channel ::= " + " | ".join(json.dumps(c) for c in _CALL_CHANNELS),
        "call_json ::= " + " | ".join(json.dumps(j + "<|message|>") for j in _JSON_CONSTRAINS),
    ]
)
# Every marker starts with `<|`, so excluding that one pair keeps them all out of free text and
# JSON strings (a literal `<|` cannot be written there either). Free text ends at its tag's
# `<|end|>`. One two-character exclusion compiles to a two-state automaton; the nine markers
# spelled out made free text alone cost ~0.3-0.6 s of engine compile per tag.
_TEXT_EXCLUDES = ["<|"]
_JSON_EXCLUDES = ["<|"]
# gpt-oss writes compact JSON; a small model otherwise fills arguments with whitespace runs
# (issue 21: 57 of 214 calls). xgrammar's structural tags take no `any_whitespace` switch and
# refuse 0, so whitespace between JSON tokens is capped at one character: a run cannot grow, and
# the cap compiles cheaper than a wider one (a repeat of 64 added ~0.3 s per tag).
_MAX_JSON_WHITESPACE = 1

# json.dumps/json.loads recurse once per nesting level, and xgrammar's JSON-schema compiler
# recurses on the C stack: a schema 100 000 levels deep crashed the process (SIGSEGV).
# canonical_json refuses anything deeper than this before recursing; request schemas are
# refused far earlier (tools.MAX_SCHEMA_DEPTH).
MAX_JSON_DEPTH = 512

# The caches below are keyed by whole tool sets, schemas and grammars, so they are bounded by
# the bytes of their keys and values (proxy/core/bounded_cache.py): bounded by entry count, a
# dozen unique large tool sets grew the proxy by 368 MiB. 56 MiB here and 8 MiB in
# tools._schema_problem, 64 MiB in all, keep hundreds of ordinary tool sets (a few KiB to tens
# of KiB each) warm. An entry over its limit (a tool set of hundreds of KiB) is rebuilt per
# request: milliseconds, against the engine's own compile of the tag.
_TAG_CACHE_BYTES = 32 * MiB
_TAG_ENTRY_BYTES = 1 * MiB  # the key's schemas, and the tag that holds two copies of each
_SCHEMA_CACHE_BYTES = 8 * MiB
_REGEX_CACHE_BYTES = 4 * MiB
_LARK_CACHE_BYTES = 12 * MiB  # the key and its EBNF translation
_ENTRY_BYTES = 256 << 10  # schema / regex / grammar text, with its result


class GrammarError(ValueError):
    """The grammar engine cannot compile a schema (the reason is in the message)."""


@dataclass(frozen=True)
class CallSpec:
    """A tool the completion may call: its recipient (`functions.x`, `namespace.x`) and the
    canonical JSON schema of its arguments, or `freeform` plain text (a custom tool)."""

    recipient: str
    schema_json: str
    freeform: bool = False
    # A freeform tool's grammar: ("lark" | "regex", definition); None: any text.
    grammar: tuple[str, str] | None = None
    # A freeform tool's content type, also allowed in its header (gpt-oss writes
    # `to=python code<|message|>`); "": none.
    content_type: str = ""


@dataclass(frozen=True)
class FinalSpec:
    """A final answer the completion may give: free text (schema None) or schema-valid JSON."""

    schema_json: str | None = None


def canonical_json(value: Any) -> str:
    """A stable text for a schema, used as a cache key (and fed to the grammar engine).

    Raises GrammarError for a value nested deeper than MAX_JSON_DEPTH, without recursing.
    """
    if schema_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise GrammarError(f"the schema is nested more than {MAX_JSON_DEPTH} levels deep")
    # NaN/Infinity stay as written: the grammar engine then rejects the schema (a 400).
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def schema_depth(value: Any, limit: int) -> int:
    """How deeply `value` nests dicts and lists (a scalar: 0, `{}` or `[1]`: 1, `{"a": {}}`: 2).

    A walk with an explicit stack, never recursion: O(number of containers), and it stops at
    the first container deeper than `limit`, returning `limit + 1`. Meant for trees parsed from
    JSON (shared sub-objects are walked once per path).
    """
    if not isinstance(value, dict | list):
        return 0
    deepest = 0
    stack: list[tuple[dict[Any, Any] | list[Any], int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return limit + 1
        deepest = max(deepest, depth)
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return deepest


def structural_tag(calls: tuple[CallSpec, ...], final: FinalSpec | None, *, preamble: bool) -> str:
    """The structural tag (JSON text) for these endings; raises GrammarError if uncompilable.

    `calls` empty and `final` None is meaningless and refused. `preamble` allows a commentary
    message before the ending (only useful when a call may follow it).
    """
    if not calls and final is None:
        raise ValueError("a grammar needs at least one allowed ending")
    tag, error = _cached_tag(calls, final, preamble)
    if error is not None:
        raise GrammarError(error)
    return tag


def check_schema(schema_json: str) -> None:
    """Raise GrammarError if the grammar engine cannot compile this JSON schema on its own."""
    error = _schema_error(schema_json)
    if error is not None:
        raise GrammarError(error)


def warm_up() -> None:
    """Import the grammar engine and build one tag now, not on the first request (~5 s)."""
    structural_tag((CallSpec("functions.f", '{"type":"object"}'),), FinalSpec(), preamble=True)


@bounded_cache(_TAG_CACHE_BYTES, _TAG_ENTRY_BYTES)
def _cached_tag(
    calls: tuple[CallSpec, ...], final: FinalSpec | None, preamble: bool
) -> tuple[str, str | None]:
    """(tag, error): a schema the engine rejects is cached too, clients resend their tools."""
    endings: list[dict[str, Any]] = []
    if calls:
        endings.append(_calls(calls))
    if final is not None:
        endings.extend(_finals(final))
    elements = [_optional_message("analysis")]
    if preamble:
        elements.append(_optional_message("commentary"))
    elements.append(_one_of(endings))
    tag = json.dumps({"type": "structural_tag", "format": _sequence(elements)})
    return tag, _compile_error("structural_tag", tag)


@bounded_cache(_SCHEMA_CACHE_BYTES, _ENTRY_BYTES)
def _schema_error(schema_json: str) -> str | None:
    return _compile_error("json_schema", schema_json)


def _compile_error(kind: str, text: str) -> str | None:
    """Why xgrammar cannot compile `text` (None if it can, or if xgrammar is not installed);
    a large grammar is compiled in the isolated worker (proxy/core/isolated.py)."""
    from proxy.core.isolated import checked

    return checked("compile_error", kind, text)


def compile_error(kind: str, text: str) -> str | None:
    """`_compile_error`'s work, in whichever process runs it.

    A proxy in front of remote replicas may run without xgrammar (it comes with vLLM and
    torch); the replica compiles the grammar then, and its 400 reaches the client.
    """
    try:
        import xgrammar
    except ImportError:
        return None
    try:
        if kind == "structural_tag":
            xgrammar.Grammar.from_structural_tag(text)
        else:
            xgrammar.Grammar.from_json_schema(text)
    except Exception as exc:  # noqa: BLE001 - xgrammar raises RuntimeError/ValueError variants
        # xgrammar prefixes "[time] file.cc:line: "; the client only needs the reason.
        return re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", str(exc).strip().splitlines()[0])
    return None


def _calls(calls: tuple[CallSpec, ...]) -> dict[str, Any]:
    """A call to one declared function, recipient in the role header or after the channel.

    JSON tools share one EBNF grammar: per tool, its name in both header forms, then its own
    schema rules, over the shared header pieces (`_HEADER_RULES`) and JSON core
    (`proxy/core/json_grammar.py`). A freeform tool, or a schema that module cannot express, is
    its own alternative (both header forms, then its body once).
    """
    grammar_lines: list[str] = []
    others: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        rules = None if call.freeform else compact_rules(call.schema_json, f"t{index}_")
        if rules is None:
            others.append(_call(call))
        else:
            name = json.dumps(call.recipient, ensure_ascii=False)
            grammar_lines += [
                f"call_{index} ::= (call_role name_{index} call_channel call_json"
                f" | call_channel call_role name_{index} call_json) t{index}_root",
                f"name_{index} ::= {name}",
                rules,
            ]
    alternatives = list(others)
    if grammar_lines:
        calls_root = " | ".join(re.findall(r"^(call_\d+) ::=", "\n".join(grammar_lines), re.M))
        grammar = "\n".join([f"root ::= {calls_root}", *grammar_lines, _HEADER_RULES, SHARED_RULES])
        alternatives.insert(0, {"type": "grammar", "grammar": grammar})
    return _sequence([_one_of(alternatives), {"type": "optional", "content": _const("<|end|>")}])


def _headers(call: CallSpec) -> list[str]:
    """`call`'s headers up to `<|message|>`: recipient in the role header, then after the
    channel; JSON tools with the json content type, freeform tools without."""
    if call.freeform:
        types = ["", f" {call.content_type}"] if call.content_type else [""]
        role_suffixes = [c + t for c in _CALL_CHANNELS for t in types]
        channel_suffixes = types
    else:
        role_suffixes = [c + j for c in _CALL_CHANNELS for j in _JSON_CONSTRAINS]
        channel_suffixes = list(_JSON_CONSTRAINS)
    return [f" to={call.recipient}{s}<|message|>" for s in role_suffixes] + [
        f"{c} to={call.recipient}{s}<|message|>" for c in _CALL_CHANNELS for s in channel_suffixes
    ]


def _call(call: CallSpec) -> dict[str, Any]:
    """`call`'s two header forms, then its body once (freeform text or xgrammar's JSON)."""
    body = _freeform(call.grammar) if call.freeform else _json(call.schema_json)
    return _sequence([_one_of([_const(h) for h in _headers(call)]), body])


def _freeform(grammar: tuple[str, str] | None) -> dict[str, Any]:
    """A custom tool's plain-text input: its regex or Lark grammar where xgrammar can take it
    (Lark is converted to xgrammar's EBNF), else any text (README: offered unconstrained)."""
    if grammar is not None:
        syntax, definition = grammar
        if syntax == "regex" and _regex_readable(definition):
            return {"type": "regex", "pattern": definition}
        if syntax == "lark":
            ebnf = lark_to_ebnf(definition)
            if ebnf is not None:
                return {"type": "grammar", "grammar": ebnf}
    return _text()


@bounded_cache(_REGEX_CACHE_BYTES, _ENTRY_BYTES)
def _regex_readable(pattern: str) -> bool:
    try:
        import xgrammar
    except ImportError:
        return True  # the replica's engine compiles it
    try:
        xgrammar.Grammar.from_regex(pattern)
    except Exception:  # noqa: BLE001 - unreadable: offered unconstrained
        return False
    return True


@bounded_cache(_LARK_CACHE_BYTES, _ENTRY_BYTES)
def lark_to_ebnf(definition: str) -> str | None:
    """xgrammar's EBNF for a Lark grammar; None when xgrammar is absent or cannot read it."""
    try:
        import xgrammar
    except ImportError:
        return None
    try:
        return str(xgrammar.Grammar.from_lark(definition))
    except Exception:  # noqa: BLE001 - any grammar it cannot read is offered unconstrained
        return None


def _finals(final: FinalSpec) -> list[dict[str, Any]]:
    if final.schema_json is None:
        return [_tag("<|channel|>final<|message|>", _text(), _END)]
    # No bare `final json` header: Harmony parsers read a lone word there as a recipient.
    return [
        _tag(f"<|channel|>final{constrain}<|message|>", _json(final.schema_json), _END)
        for constrain in (" <|constrain|>json", "")
    ]


def _optional_message(channel: str) -> dict[str, Any]:
    message = _tag(f"<|channel|>{channel}<|message|>", _text(), "<|end|>")
    return {"type": "optional", "content": _sequence([message, _const("<|start|>assistant")])}


def _tag(begin: str, content: dict[str, Any], end: str | list[str]) -> dict[str, Any]:
    return {"type": "tag", "begin": begin, "content": content, "end": end}


def _sequence(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "sequence", "elements": elements}


def _const(value: str) -> dict[str, Any]:
    return {"type": "const_string", "value": value}


def _one_of(formats: list[dict[str, Any]]) -> dict[str, Any]:
    return formats[0] if len(formats) == 1 else {"type": "or", "elements": formats}


def _text() -> dict[str, Any]:
    return {"type": "any_text", "excludes": _TEXT_EXCLUDES}


def _json(schema_json: str) -> dict[str, Any]:
    """Compact JSON for the schema over the shared core, else xgrammar's own json_schema
    element (marker prefix excluded, whitespace runs capped)."""
    rules = compact_rules(schema_json, "a_")
    if rules is not None:
        return {"type": "grammar", "grammar": f"root ::= a_root\n{rules}\n{SHARED_RULES}"}
    return {
        "type": "json_schema",
        "json_schema": json.loads(schema_json),
        "excludes": _JSON_EXCLUDES,
        "max_whitespace_cnt": _MAX_JSON_WHITESPACE,
    }
