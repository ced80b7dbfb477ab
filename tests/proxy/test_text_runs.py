"""Runs of plain text tokens are parsed at once: exactly what parsing them one by one gives.

`DeltaAssembler.feed` hands the plain text tokens of a message to the parser in one call
(`StreamableParser.process_text_run`) and routes their joined text once. The oracle is the
token-by-token path itself (runs turned off, one token per feed): over model-like completions
(reasoning, preambles, calls, answers, with text whose characters span tokens) and the
corrupted ones of tests/harmony/strategies.py (garbled headers, stray and split special
tokens, unknown ids), cut into random engine chunks, both
paths must give the same text per message and channel, the same calls with the same
arguments, the same counts, the same logprob positions, the same recoveries and messages.
With runs on, a message's text after its first run also takes the short way
(the lane in `DeltaAssembler._feed_text_run`, no routing), so the same oracle covers it.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from harmony import Role, StreamableParser
from proxy.core.assembler import DeltaAssembler
from proxy.core.coalesce import join_events
from proxy.core.conversation import load_encoding
from proxy.core.events import CallStart
from proxy.core.tool_names import ToolNames
from tests.harmony.strategies import (
    DIFFERENTIAL,
    INVALID_IDS,
    NOT_U32_IDS,
    SPECIAL_IDS,
    completions,
    texts,
)
from tests.proxy.helpers import toks

STOPS = (200002, 200012)  # <|return|>, <|call|>
ENCODING = load_encoding()

# Text as a model writes it: words, accents, emoji and CJK (characters split across tokens).
_prose = st.lists(
    st.sampled_from(
        list('abc xyz.,\n"{}:') + ["é", "ß", "→", "日本", "🙂", "👩‍💻", " the", " to="]
    ),
    min_size=1,
    max_size=40,
).map("".join)
_arguments = st.dictionaries(st.sampled_from(["city", "q", "n"]), _prose, max_size=2).map(
    lambda d: json.dumps(d, ensure_ascii=False)
)


@st.composite
def answers(draw: st.DrawFn) -> list[int]:
    """Completions like gpt-oss writes them (reasoning, preambles, calls to declared and
    undeclared functions, answers), sometimes corrupted (a special or unknown id inserted,
    tokens dropped, cut short)."""
    text = ""
    for i in range(draw(st.integers(1, 4))):
        if i:
            text += "<|start|>assistant"
        kind = draw(st.sampled_from(["analysis", "final", "preamble", "call", "undeclared"]))
        if kind == "call" or kind == "undeclared":
            name = draw(st.sampled_from(["get_weather", "f"])) if kind == "call" else "nope"
            channel = draw(st.sampled_from(["commentary", "analysis"]))
            text += f"<|channel|>{channel} to=functions.{name} <|constrain|>json<|message|>"
            text += draw(_arguments) + "<|call|>"
        else:
            channel = {"preamble": "commentary"}.get(kind, kind)
            body = draw(st.one_of(_prose, _prose, texts))
            text += f"<|channel|>{channel}<|message|>{body}"
            text += "<|return|>" if kind == "final" else "<|end|>"
    tokens = list(ENCODING.encode(text, allowed_special="all"))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        at = draw(st.integers(0, len(tokens)))
        action = draw(st.sampled_from(["insert", "delete", "truncate"]))
        if action == "insert":
            tokens.insert(at, draw(st.sampled_from(SPECIAL_IDS + INVALID_IDS)))
        elif action == "delete" and tokens:
            del tokens[min(at, len(tokens) - 1)]
        elif action == "truncate":
            tokens = tokens[:at]
    return tokens


def _assembler(*, runs: bool, stop_ids: tuple[int, ...], **options: object) -> DeltaAssembler:
    """`options`: calls_enforced, tools_callable (tool_choice none: no call is callable) and
    max_tool_calls (the choice ends after that many calls)."""
    assembler = DeltaAssembler(
        ENCODING, ToolNames(["f", "get_weather", "lookup"]), stop_token_ids=stop_ids, **options
    )
    assembler._text_runs = runs
    return assembler


def _feed(assembler: DeltaAssembler, chunks: list[list[int]]) -> dict:
    events, positions, consumed, offset = [], [], 0, 0
    for chunk in chunks:
        if assembler.done:
            break
        events += assembler.feed(chunk)
        positions += [offset + k for k in assembler.content_positions]
        consumed += assembler.consumed
        offset += len(chunk)
    parser = assembler._parser
    state = (parser.state_data, parser.tokens, parser.last_content_delta is None)
    events += assembler.finish()
    # Call ids are random: compare everything else about the calls.
    events = [
        CallStart(e.call, e.item, "id", e.name, e.arguments) if type(e) is CallStart else e
        for e in join_events(events)
    ]
    return {
        "events": events,
        "positions": positions,
        "consumed": consumed,
        "completion_tokens": assembler.completion_tokens,
        "reasoning_tokens": assembler.reasoning_tokens,
        "recoveries": assembler.recoveries,
        "tool_call_recoveries": assembler.tool_call_recoveries,
        "calls": [(c.name, "".join(c.arguments)) for c in assembler.tool_calls],
        "messages": [m.to_dict() for m in parser.messages],
        "parser": state,
    }


@DIFFERENTIAL
@given(st.one_of(answers(), completions().map(lambda c: c["tokens"])), st.data())
def test_runs_of_text_tokens_parse_as_token_by_token(tokens: list[int], data: st.DataObject):
    tokens = [t for t in tokens if t not in NOT_U32_IDS]  # never from an engine
    enforced = data.draw(st.booleans())
    # A stop token the caller watches for may be an ordinary one (a request's stop_token_ids).
    stop_ids = STOPS + tuple(data.draw(st.lists(st.sampled_from(tokens or [0]), max_size=1)))
    chunks, at = [], 0
    while at < len(tokens):
        size = data.draw(st.integers(1, 12))
        chunks.append(tokens[at : at + size])
        at += size
    options = {
        "calls_enforced": enforced,
        "tools_callable": data.draw(st.booleans()),
        "max_tool_calls": data.draw(st.sampled_from([None, None, 1, 2])),
    }
    oracle = _feed(_assembler(runs=False, stop_ids=stop_ids, **options), [[t] for t in tokens])
    assert _feed(_assembler(runs=True, stop_ids=stop_ids, **options), chunks) == oracle


def _in_content() -> StreamableParser:
    parser = StreamableParser(ENCODING, Role.ASSISTANT, recover=True)
    for token in toks("<|channel|>final<|message|>"):
        parser.process(token)
    return parser


def test_a_run_takes_a_messages_plain_text_and_stops_at_what_needs_care():
    parser = _in_content()
    text = toks("Hello there")
    whole = ENCODING.encode("é", allowed_special="all")  # one token, whole UTF-8 on its own
    split = ENCODING.encode("龘", allowed_special="all")  # two tokens, neither whole alone
    assert len(whole) == 1 and len(split) == 2
    tokens = text + whole + split + toks("<|return|>")
    taken, joined = parser.process_text_run(tokens, 0)
    assert (taken, joined) == (len(text) + 1, "Hello thereé")
    assert parser.last_content_delta == "Hello thereé"
    # The split character is process()'s: while its first byte is held, no run starts.
    parser.process(tokens[taken])
    assert parser.process_text_run(tokens, taken + 1) == (0, "")
    parser.process(tokens[taken + 1])
    assert parser.last_content_delta == "龘"
    # A special token is never part of a run; outside a message's content nothing is.
    assert parser.process_text_run(tokens, taken + 2) == (0, "")
    parser.process(tokens[taken + 2])
    assert parser.process_text_run(text, 0) == (0, "")
    assert parser.messages[-1].content[0].text == "Hello thereé龘"


def test_a_run_stops_before_an_ordinary_token_the_caller_stops_on():
    parser = _in_content()
    text = toks("Hello there")
    assert parser.process_text_run(text, 0, frozenset({text[1]})) == (1, "Hello")
