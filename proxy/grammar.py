"""Harmony-shaped grammars for the engine: xgrammar structural tags, built once per tool set.

A completion is free reasoning (an optional analysis message), an optional commentary preamble,
then one ending: a final answer (free text, or JSON matching a schema) and/or a call to one of
the declared functions with arguments matching its JSON schema. Harmony markers are excluded
from free text and JSON strings: xgrammar sees special tokens as their text, so without the
exclusions a string could swallow `<|end|><|start|>...` and the grammar's idea of the message
would drift from the parser's.

A call may put its recipient in the role header (` to=functions.x<|channel|>commentary ...`, as
the Harmony renderer writes it) or after the channel (`<|channel|>commentary to=functions.x ...`,
as gpt-oss often generates it). Each function's JSON body appears once per form, behind a small
set of shared header prefixes and suffixes (2 schema copies per tool, where spelling out every
header variant, as vLLM does, costs 12). An undeclared recipient (`to=python`,
`to=functions.calculator`) cannot be generated at all.

Building a tag and checking that it compiles costs milliseconds for large tool sets; both are
cached by the tag's inputs, so a client that sends the same tools every turn pays once (the
engine caches its tokenizer-aware compile by the tag's text in the same way). That engine
compile is the expensive part, and exclusions dominate it (measured: 8 tools with every marker
excluded from each JSON body took 74-90 s, against 2-3 s now): free text excludes the markers
themselves, but JSON bodies exclude the single string `<|` that starts every marker, so
arguments cannot contain a literal `<|` (`benchmarks/bench_grammar.py`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

# The stop tokens (<|return|>, <|call|>) end a message too; xgrammar refuses stop tokens inside
# a constrained span, so an optional `<|end|>` lets the grammar finish and the engine's stop ids
# take over.
_END = ["<|end|>", ""]
_JSON_CONSTRAINS = (" <|constrain|>json", " json")
_CALL_CHANNELS = ("<|channel|>commentary", "<|channel|>analysis")
_MARKERS = [
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
    "<|endoftext|>",
    "<|reserved",
]
# Free text ends at its tag's `<|end|>`; every other marker is forbidden inside it.
_TEXT_EXCLUDES = [m for m in _MARKERS if m != "<|end|>"]
# Every marker starts with `<|`: one exclusion keeps them all out of JSON, at a fraction of the
# compile cost of nine.
_JSON_EXCLUDES = ["<|"]
# JSON may be pretty-printed, but a small model can otherwise loop on whitespace forever (the
# engine's own whitespace switch does not reach structural tags).
_MAX_JSON_WHITESPACE = 64


class GrammarError(ValueError):
    """The grammar engine cannot compile a schema (the reason is in the message)."""


@dataclass(frozen=True)
class CallSpec:
    """A function the completion may call: its model-side name and canonical schema JSON."""

    model_name: str
    schema_json: str


@dataclass(frozen=True)
class FinalSpec:
    """A final answer the completion may give: free text (schema None) or schema-valid JSON."""

    schema_json: str | None = None


def canonical_json(value: Any) -> str:
    """A stable text for a schema, used as a cache key (and fed to the grammar engine)."""
    # NaN/Infinity stay as written: the grammar engine then rejects the schema (a 400).
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def structural_tag(calls: tuple[CallSpec, ...], final: FinalSpec | None, *, preamble: bool) -> str:
    """The structural tag (JSON text) for these endings; raises GrammarError if uncompilable.

    `calls` empty and `final` None is meaningless and refused. `preamble` allows a commentary
    message before the ending (only useful when a call may follow it).
    """
    if not calls and final is None:
        raise ValueError("a grammar needs at least one allowed ending")
    return _cached_tag(calls, final, preamble)


def check_schema(schema_json: str) -> None:
    """Raise GrammarError if the grammar engine cannot compile this JSON schema on its own."""
    _cached_schema_check(schema_json)


@functools.lru_cache(maxsize=512)
def _cached_tag(calls: tuple[CallSpec, ...], final: FinalSpec | None, preamble: bool) -> str:
    import xgrammar
    from xgrammar import structural_tag as st

    endings: list[Any] = []
    if calls:
        endings.append(_calls(st, calls))
    if final is not None:
        endings.extend(_finals(st, final))
    elements: list[Any] = [_optional_message(st, "analysis")]
    if preamble:
        elements.append(_optional_message(st, "commentary"))
    elements.append(endings[0] if len(endings) == 1 else st.OrFormat(elements=endings))
    tag = json.dumps(st.StructuralTag(format=st.SequenceFormat(elements=elements)).model_dump())
    try:
        xgrammar.Grammar.from_structural_tag(tag)
    except Exception as exc:  # noqa: BLE001 - xgrammar raises RuntimeError/ValueError variants
        raise GrammarError(_reason(exc)) from exc
    return tag


@functools.lru_cache(maxsize=1024)
def _cached_schema_check(schema_json: str) -> None:
    import xgrammar

    try:
        xgrammar.Grammar.from_json_schema(schema_json)
    except Exception as exc:  # noqa: BLE001
        raise GrammarError(_reason(exc)) from exc


def _reason(exc: Exception) -> str:
    # xgrammar prefixes "[time] file.cc:line: "; the client only needs the reason.
    return re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", str(exc).strip().splitlines()[0])


def _calls(st: Any, calls: tuple[CallSpec, ...]) -> Any:
    """A call to one declared function, recipient in the role header or after the channel."""
    role_side = st.SequenceFormat(
        elements=[
            st.ConstStringFormat(value=" to=functions."),
            _bodies(st, calls, [c + j for c in _CALL_CHANNELS for j in _JSON_CONSTRAINS]),
        ]
    )
    channel_side = st.SequenceFormat(
        elements=[
            _one_of(st, [c + " to=functions." for c in _CALL_CHANNELS]),
            _bodies(st, calls, list(_JSON_CONSTRAINS)),
        ]
    )
    return st.SequenceFormat(
        elements=[
            st.OrFormat(elements=[role_side, channel_side]),
            st.OptionalFormat(content=st.ConstStringFormat(value="<|end|>")),
        ]
    )


def _bodies(st: Any, calls: tuple[CallSpec, ...], header_suffixes: list[str]) -> Any:
    """For each function: its name, the rest of the header, then its JSON arguments."""
    suffixes = _one_of(st, [s + "<|message|>" for s in header_suffixes])
    return _one_of_formats(
        st,
        [
            st.SequenceFormat(
                elements=[
                    st.ConstStringFormat(value=call.model_name),
                    suffixes,
                    _json(st, call.schema_json),
                ]
            )
            for call in calls
        ],
    )


def _finals(st: Any, final: FinalSpec) -> list[Any]:
    if final.schema_json is None:
        return [st.TagFormat(begin="<|channel|>final<|message|>", content=_text(st), end=_END)]
    return [
        st.TagFormat(
            begin=f"<|channel|>final{constrain}<|message|>",
            content=_json(st, final.schema_json),
            end=_END,
        )
        for constrain in (*_JSON_CONSTRAINS, "")
    ]


def _optional_message(st: Any, channel: str) -> Any:
    return st.OptionalFormat(
        content=st.SequenceFormat(
            elements=[
                st.TagFormat(
                    begin=f"<|channel|>{channel}<|message|>", content=_text(st), end="<|end|>"
                ),
                st.ConstStringFormat(value="<|start|>assistant"),
            ]
        )
    )


def _one_of(st: Any, values: list[str]) -> Any:
    return _one_of_formats(st, [st.ConstStringFormat(value=v) for v in values])


def _one_of_formats(st: Any, formats: list[Any]) -> Any:
    return formats[0] if len(formats) == 1 else st.OrFormat(elements=formats)


def _text(st: Any) -> Any:
    return st.AnyTextFormat(excludes=_TEXT_EXCLUDES)


def _json(st: Any, schema_json: str) -> Any:
    return st.JSONSchemaFormat(
        json_schema=json.loads(schema_json),
        excludes=_JSON_EXCLUDES,
        max_whitespace_cnt=_MAX_JSON_WHITESPACE,
    )
