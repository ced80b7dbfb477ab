"""The recovering parser (`recover=True`): every malformed shape real gpt-oss models emit.

Each test feeds the token ids a model could produce and checks what the serving layer gets: the
completed messages and the streamed deltas. Two properties hold throughout: it never raises, and
the deltas of a message add up to its text (nothing is lost between streaming and the result).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import harmony as H
from harmony._tokens import N_VOCAB
from tests.harmony.strategies import completions

ENC = H.load_harmony_encoding(H.HarmonyEncodingName.HARMONY_GPT_OSS)


@dataclass
class Parsed:
    messages: list[tuple[str | None, str | None, str | None, str]]
    recoveries: list[str]
    streamed: str


def tokens(text: str) -> list[int]:
    return ENC.encode(text, allowed_special="all")


def feed(ids: list[int], role: H.Role | None = H.Role.ASSISTANT) -> Parsed:
    parser = H.StreamableParser(ENC, role, recover=True)
    streamed = []
    for token in ids:
        parser.process(token)
        if parser.last_content_delta:
            streamed.append(parser.last_content_delta)
    parser.process_eos()
    if parser.last_content_delta:
        streamed.append(parser.last_content_delta)
    messages = [
        (m.channel, m.recipient, m.content_type, "".join(c.text for c in m.content))
        for m in parser.messages
    ]
    return Parsed(messages, parser.recoveries, "".join(streamed))


def parse(text: str) -> Parsed:
    result = feed(tokens(text))
    assert result.streamed == "".join(m[3] for m in result.messages)
    return result


def test_well_formed_output_needs_no_recovery() -> None:
    text = (
        "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>commentary "
        'to=functions.f <|constrain|>json<|message|>{"a":1}<|call|>'
    )
    result = parse(text)
    assert result.recoveries == []
    assert result.messages == [
        ("analysis", None, None, "think"),
        ("commentary", "functions.f", "<|constrain|>json", '{"a":1}'),
    ]


def test_well_formed_output_matches_strict_parser() -> None:
    ids = tokens(
        "<|channel|>analysis<|message|>Hi 💖<|end|><|start|>assistant<|channel|>final"
        "<|message|>done<|return|>"
    )
    strict = ENC.parse_messages_from_completion_tokens(ids, H.Role.ASSISTANT)
    parser = H.StreamableParser(ENC, H.Role.ASSISTANT, recover=True)
    for token in ids:
        parser.process(token)
    assert parser.messages == strict


def test_header_garbage_keeps_channel_recipient_and_content_type() -> None:
    result = parse(
        "<|channel|>commentary ––commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>'
    )
    assert result.messages == [
        ("commentary", "functions.get_weather", "<|constrain|>json", '{"city":"Paris"}')
    ]
    assert result.recoveries == ["header_repaired"]


def test_duplicated_recipient_in_header() -> None:
    result = parse("<|channel|>commentary to=functions.f to=functions.f<|message|>{}<|call|>")
    assert result.messages == [("commentary", "functions.f", None, "{}")]


def test_text_with_no_header_is_a_message_streamed_as_it_comes() -> None:
    result = parse("I can't help with that request, sorry.<|end|>")
    assert result.messages == [(None, None, None, "I can't help with that request, sorry.")]
    assert "headerless_text" in result.recoveries


def test_short_text_with_no_header_is_kept_at_the_stop_token() -> None:
    result = parse("No<|end|>")
    assert result.messages == [(None, None, None, "No")]


def test_channel_then_text_without_message_marker() -> None:
    result = parse("<|channel|>analysis I must refuse<|end|>")
    assert result.messages == [("analysis", None, None, "I must refuse")]


def test_doubled_start_is_ignored() -> None:
    result = parse("<|start|><|start|>assistant<|channel|>final<|message|>hi<|return|>")
    assert result.messages == [("final", None, None, "hi")]
    assert result.recoveries.count("doubled_start") == 2


def test_doubled_start_after_a_message() -> None:
    result = parse(
        "<|channel|>analysis<|message|>a<|end|><|start|><|start|>assistant<|channel|>final"
        "<|message|>b<|return|>"
    )
    assert result.messages == [("analysis", None, None, "a"), ("final", None, None, "b")]


def test_text_after_end_without_start_opens_a_message() -> None:
    result = parse(
        "<|channel|>analysis<|message|>think<|end|>commentary to=functions.f <|constrain|>json"
        "<|message|>{}<|call|>"
    )
    assert result.messages == [
        ("analysis", None, None, "think"),
        ("commentary", "functions.f", "<|constrain|>json", "{}"),
    ]
    assert "missing_start" in result.recoveries


def test_role_word_after_end_without_start() -> None:
    result = parse(
        "<|channel|>analysis<|message|>x<|end|>assistant<|channel|>final<|message|>y<|return|>"
    )
    assert result.messages == [("analysis", None, None, "x"), ("final", None, None, "y")]


def test_channel_after_end_without_start() -> None:
    result = parse("<|channel|>analysis<|message|>x<|end|><|channel|>final<|message|>y<|return|>")
    assert result.messages == [("analysis", None, None, "x"), ("final", None, None, "y")]


def test_stray_stop_tokens_between_messages_are_ignored() -> None:
    result = parse(
        "<|channel|>analysis<|message|>x<|end|><|return|><|end|><|start|>assistant"
        "<|channel|>final<|message|>y<|return|>"
    )
    assert result.messages == [("analysis", None, None, "x"), ("final", None, None, "y")]
    assert result.recoveries == ["stray_token", "stray_token"]


def test_text_after_return_is_kept() -> None:
    result = parse("<|channel|>final<|message|>answer<|return|>extra text here<|end|>")
    assert result.messages == [
        ("final", None, None, "answer"),
        (None, None, None, "extra text here"),
    ]


def test_message_after_return_is_parsed() -> None:
    result = parse(
        "<|channel|>final<|message|>a<|return|><|start|>assistant<|channel|>final"
        "<|message|>b<|return|>"
    )
    assert result.messages == [("final", None, None, "a"), ("final", None, None, "b")]


def test_constrain_glued_to_recipient() -> None:
    result = parse(
        "<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{}<|call|>"
    )
    assert result.messages == [("commentary", "functions.get_weather", "<|constrain|>json", "{}")]


def test_constrain_without_recipient_is_a_content_type() -> None:
    result = parse("<|channel|>final <|constrain|>json<|message|>{}<|return|>")
    assert result.messages == [("final", None, "<|constrain|>json", "{}")]


def test_markup_glued_to_recipient_is_cut() -> None:
    result = parse("<|channel|>commentary to=functions.f<|channel|>commentary<|message|>{}<|call|>")
    assert result.messages == [("commentary", "functions.f", None, "{}")]


@pytest.mark.parametrize("recipient", ["functions.web-search", "mcp.server/tool.v2", "a.b.c"])
def test_recipients_with_dashes_dots_and_slashes(recipient: str) -> None:
    result = parse(f"<|channel|>commentary to={recipient} <|constrain|>json<|message|>{{}}<|call|>")
    assert result.messages == [("commentary", recipient, "<|constrain|>json", "{}")]


def test_bare_tool_name_recipient() -> None:
    result = parse("<|channel|>commentary to=get_weather<|message|>{}<|call|>")
    assert result.messages == [("commentary", "get_weather", None, "{}")]


def test_tool_call_on_analysis_channel() -> None:
    result = parse("<|channel|>analysis to=functions.f code<|message|>{}<|call|>")
    assert result.messages == [("analysis", "functions.f", "code", "{}")]


def test_start_inside_content_ends_the_message() -> None:
    result = parse(
        "<|channel|>analysis<|message|>a<|start|>assistant<|channel|>final<|message|>b<|return|>"
    )
    assert result.messages == [("analysis", None, None, "a"), ("final", None, None, "b")]
    assert "missing_end" in result.recoveries


def test_channel_inside_content_ends_the_message() -> None:
    result = parse("<|channel|>analysis<|message|>a<|channel|>final<|message|>b<|return|>")
    assert result.messages == [("analysis", None, None, "a"), ("final", None, None, "b")]


def test_other_special_tokens_inside_content_are_dropped() -> None:
    result = parse(
        "<|channel|>final<|message|>a<|constrain|>b<|message|>c<|reserved_200014|>d<|end|>"
    )
    assert result.messages == [("final", None, None, "abcd")]
    assert result.recoveries == ["special_in_content"] * 3


def test_endoftext_inside_content_ends_the_message() -> None:
    result = parse("<|channel|>final<|message|>a<|endoftext|>")
    assert result.messages == [("final", None, None, "a")]


def test_eos_in_the_middle_of_a_header_loses_nothing() -> None:
    result = feed(tokens("<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>fin"))
    assert result.messages == [("analysis", None, None, "x")]
    assert result.recoveries == ["eos_in_header"]


def test_eos_in_a_header_that_holds_text() -> None:
    result = feed(tokens("Sorry"))
    assert result.messages == [(None, None, None, "Sorry")]
    assert result.streamed == "Sorry"


def test_empty_channel_value_does_not_raise() -> None:
    result = parse("<|channel|><|message|>x<|end|>")
    assert result.messages == [(None, None, None, "x")]


def test_unknown_token_ids_do_not_raise() -> None:
    parser = H.StreamableParser(ENC, H.Role.ASSISTANT, recover=True)
    for token in [*tokens("<|channel|>final<|message|>ok"), 2**32 - 1, *tokens(" fine<|end|>")]:
        parser.process(token)
    assert parser.messages[0].content[0].text.startswith("ok")


def test_split_utf8_at_the_end_is_reported_as_a_last_delta() -> None:
    emoji_first_half = [9552]  # " \xf0\x9f": a space and half an emoji
    result = feed([*tokens("<|channel|>final<|message|>"), *emoji_first_half, 200007])
    assert result.messages == [("final", None, None, " \ufffd")]
    assert result.streamed == " \ufffd"


def test_parser_without_role_recovers_too() -> None:
    result = feed(tokens("<|start|>assistant<|channel|>final<|message|>hi<|end|>oops"), role=None)
    assert result.messages == [("final", None, None, "hi"), (None, None, None, "oops")]


_MARKUP = [200002, 200003, 200005, 200006, 200007, 200008, 200012, 199999, 200014]
_WELL_FORMED = tokens(
    "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>"
    'commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Zürich 💖"}<|call|>'
)


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(_WELL_FORMED)),
            st.booleans(),
            st.one_of(st.sampled_from(_MARKUP), st.integers(0, 201100)),
        ),
        max_size=6,
    )
)
def test_corrupted_completions_never_raise_and_lose_no_streamed_text(edits: list) -> None:
    ids = list(_WELL_FORMED)
    for position, insert, token in edits:
        position = min(position, len(ids))
        if insert:
            ids.insert(position, token)
        elif position < len(ids):
            del ids[position]
    result = feed(ids)
    assert result.streamed == "".join(m[3] for m in result.messages)


def test_a_message_marker_spelled_in_ordinary_tokens_ends_the_header() -> None:
    # The demo model under a grammar forcing `to=python code<|message|>` wrote the marker as
    # `<`, `|`, `message`, `|`, `>` (xgrammar sees special tokens as their text).
    head = tokens("<|channel|>analysis to=python code")
    spelled = [t for piece in ("<", "|", "message", "|", ">\nprint(1)") for t in ENC.encode(piece)]
    result = feed(head + spelled + tokens("<|call|>"))
    assert result.messages == [("analysis", "python", "code", "\nprint(1)")]
    assert result.recoveries == ["spelled_message"]
    assert result.streamed == "\nprint(1)"


# -- the header helpers' fast paths against their plain forms ------------------------------------


def _split_ascii_plainly(text: str) -> list[str]:
    parts = [text]
    for sep in " \t\n\x0c\r":
        parts = [p for chunk in parts for p in chunk.split(sep)]
    return [p for p in parts if p]


@given(st.text(alphabet=st.sampled_from("ab<|> \t\n\x0b\x0c\r\x1c\x1f\x85\xa0\u3000é")))
def test_split_ascii_is_rusts_split_ascii_whitespace(text):
    from harmony.header import _split_ascii

    assert _split_ascii(text) == _split_ascii_plainly(text)


def _outcome(completion) -> Parsed | tuple[str, str]:
    """A strategy completion's parse, or the error the reference raises for it."""
    role = H.Role(completion["role"]) if completion["role"] else None
    try:
        return feed(completion["tokens"], role)
    except (TypeError, OverflowError) as exc:  # ids no u32 holds: refused as the reference
        return type(exc).__name__, str(exc)


def _header_bytes_plainly(p: H.StreamableParser) -> bytes:
    known = [t for t in p._header_tokens if 0 <= t < N_VOCAB]
    return p._token_bytes(known) or b""


@settings(max_examples=200, deadline=None)
@given(completions())
def test_the_kept_header_bytes_parse_as_rebuilding_them_per_token_did(completion):
    """`recovery.header_bytes` decodes only the header tokens appended since it was last asked;
    the parse must be the one that decoding the whole header on each token gave."""
    from harmony import recovery

    kept = _outcome(completion)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recovery, "header_bytes", _header_bytes_plainly)
        plain = _outcome(completion)
    assert kept == plain


class _NeverSeen(set):
    def __contains__(self, item: object) -> bool:
        return False


@settings(max_examples=200, deadline=None)
@given(completions())
def test_headers_remembered_as_plain_parse_as_checking_them_again(completion):
    """`recovery.header_token` skips its checks for a header it has seen need no repair; the
    parse, first time (filling the memory) and again (hitting it), must be the checked one."""
    from harmony import recovery

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recovery, "_PLAIN_HEADERS", _NeverSeen())
        checked = _outcome(completion)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recovery, "_PLAIN_HEADERS", set())
        first = _outcome(completion)
        again = _outcome(completion)
        remembered = len(recovery._PLAIN_HEADERS)
    assert first == checked
    assert again == checked
    if remembered:
        event("a header was remembered")


@pytest.mark.parametrize(
    ("memory", "empty"), [("_PLAIN_HEADERS", set), ("_HEADERS", dict)], ids=["plain", "recovered"]
)
def test_the_memories_of_headers_are_bounded(monkeypatch, memory, empty):
    """Both header memories (`_PLAIN_HEADERS`, `_HEADERS`) are emptied when full, and what they
    hold is still used: a header seen before is parsed the same."""
    from harmony import recovery

    monkeypatch.setattr(recovery, memory, empty())
    monkeypatch.setattr(recovery, memory + "_MAX", 3)
    for channel in ("analysis", "commentary", "final", "analysis to=functions.f"):
        feed(tokens(f"<|channel|>{channel}<|message|>hi<|end|>"))
        assert len(getattr(recovery, memory)) <= 3
    assert feed(tokens("<|channel|>final<|message|>hi<|end|>")).messages == [
        ("final", None, None, "hi")
    ]


class _NeverKnown(dict):
    def get(self, key, default=None):
        return default


@settings(max_examples=200, deadline=None)
@given(completions())
def test_remembered_headers_parse_as_recovering_them_again(completion):
    """`recovery.completed_header` keeps what each header's tokens recovered to; the parse,
    first time (filling the memory) and again (hitting it), must be the one recovered anew:
    messages with their authors, recoveries and deltas."""
    from harmony import recovery

    def outcome() -> object:
        """The whole messages (authors too), recoveries and deltas; or the error raised."""
        role = H.Role(completion["role"]) if completion["role"] else None
        parser = H.StreamableParser(ENC, role, recover=True)
        deltas = []
        try:
            for token in completion["tokens"]:
                parser.process(token)
                deltas.append(parser.last_content_delta)
        except (TypeError, OverflowError) as exc:
            return type(exc).__name__, str(exc)
        parser.process_eos()
        return parser.messages, parser.recoveries, deltas, parser.last_content_delta

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recovery, "_HEADERS", _NeverKnown())
        recovered = outcome()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recovery, "_HEADERS", {})
        first = outcome()
        again = outcome()
        remembered = len(recovery._HEADERS)
    assert first == recovered
    assert again == recovered
    if remembered:
        event("a header was remembered")


def test_a_remembered_header_gives_each_message_its_own_author(monkeypatch):
    from harmony import recovery

    monkeypatch.setattr(recovery, "_HEADERS", {})
    completion = tokens("<|channel|>final<|message|>hi<|end|>")
    first = H.StreamableParser(ENC, H.Role.ASSISTANT, recover=True)
    second = H.StreamableParser(ENC, H.Role.ASSISTANT, recover=True)
    for token in completion:
        first.process(token)
    assert len(recovery._HEADERS) == 1
    for token in completion:
        second.process(token)
    a, b = first.messages[0], second.messages[0]
    assert a == b and a.author is not b.author
    b.author.name = "changed"
    assert first.messages[0].author.name is None


def test_a_remembered_header_is_keyed_by_the_role_given_too(monkeypatch):
    """The same header tokens after a given role and after `<|start|>` name different authors."""
    from harmony import recovery

    monkeypatch.setattr(recovery, "_HEADERS", {})
    parser = H.StreamableParser(ENC, H.Role.USER, recover=True)
    for token in tokens("<|channel|>final<|message|>a<|end|><|start|><|channel|>final<|message|>b"):
        parser.process(token)
    parser.process_eos()
    assert [m.author.role for m in parser.messages] == [H.Role.USER, H.Role.ASSISTANT]


@settings(max_examples=200, deadline=None)
@given(completions(), st.data())
def test_messages_built_when_asked_are_the_ones_built_as_they_complete(completion, data):
    """The parser keeps completed messages as (header, text) and builds their `Message` models
    when `messages` is read: read after every token (each built as it completes) or only at the
    end, the messages are equal, each read returns the same objects, and `message_address`
    gives each one's (channel, recipient) without building it. (That they are the reference
    library's messages is the differential suites' test.)"""
    role = H.Role(completion["role"]) if completion["role"] else None
    eager = H.StreamableParser(ENC, role, recover=True)
    lazy = H.StreamableParser(ENC, role, recover=True)
    asked: list[H.Message] = []
    for token in completion["tokens"]:
        if type(token) is not int or not 0 <= token < 2**32:
            continue  # (the argument checks' cases: the other tests of this file raise them)
        eager.process(token)
        lazy.process(token)
        asked = eager.messages  # built one by one, as each message completes
        if data.draw(st.booleans()):
            addresses = [lazy.message_address(i) for i in range(lazy.message_count)]
            assert addresses == [(m.channel, m.recipient) for m in asked]
    eager.process_eos()
    lazy.process_eos()
    assert lazy.messages == eager.messages
    first, again = lazy.messages, lazy.messages
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert all(a is b for a, b in zip(asked, eager.messages, strict=False))
