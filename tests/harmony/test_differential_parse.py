"""Parsing completions agrees with the reference, malformed ones included (spec §8).

Completions are written the way the model writes them (channel first, header variations, text
that turns into special tokens) and then corrupted by random insertions, deletions, duplications
and truncations. Ours must return the same messages (Message.to_dict()) or raise the same
exception class with the same message.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given

from tests.harmony import strategies
from tests.harmony.differential import OURS, both, build_conversation, encoding, parse


@strategies.DIFFERENTIAL
@given(strategies.completions())
def test_parsed_messages_and_errors_match_reference(case: dict[str, Any]) -> None:
    ours, reference = both(lambda lib: parse(lib, case["tokens"], case["role"], case["strict"]))
    assert ours == reference, f"ours={ours!r}\nreference={reference!r}\ncase={case!r}"


@strategies.DIFFERENTIAL
@given(strategies.conversations, strategies.st.booleans())
def test_rendered_conversations_parse_back_like_reference(messages: list, strict: bool) -> None:
    """Library-rendered (recipient-first) headers, tool authors and every role parse alike."""
    rendered, _ = both(
        lambda lib: encoding(lib).render_conversation(
            build_conversation(lib, messages),
            lib.RenderConversationConfig(auto_drop_analysis=False),
        )
    )
    if rendered.error is not None:
        return
    ours, reference = both(lambda lib: parse(lib, rendered.value, None, strict))
    assert ours == reference, f"ours={ours!r}\nreference={reference!r}\nmessages={messages!r}"


@strategies.DIFFERENTIAL
@given(strategies.completions())
def test_parsed_messages_compare_equal_to_built_messages(case: dict[str, Any]) -> None:
    """Parsed Message objects are == to their reference twins rebuilt in our library."""
    ours, reference = both(
        lambda lib: encoding(lib).parse_messages_from_completion_tokens(
            case["tokens"],
            None if case["role"] is None else lib.Role(case["role"]),
            strict=case["strict"],
        )
    )
    if reference.error is not None:
        assert ours.error == reference.error
        return
    rebuilt = [OURS.Message.from_dict(m.to_dict()) for m in reference.value]
    assert ours.value == rebuilt


@strategies.DIFFERENTIAL
@given(
    strategies.st.lists(
        strategies.st.sampled_from(
            strategies.SPECIAL_IDS
            + strategies.INVALID_IDS
            + strategies.NOT_U32_IDS
            + [9552, 132990, 4108, 220, 56, 173781]
        ),
        max_size=12,
    )
)
def test_decoding_token_runs_matches_reference(tokens: list[int]) -> None:
    """decode_utf8 (strict) and decode (lossy) on byte-splitting and invalid ids."""
    for call in (
        lambda lib: encoding(lib).decode_utf8(tokens),
        lambda lib: encoding(lib).decode(tokens),
        lambda lib: encoding(lib).decode(tokens, errors="ignore"),
        lambda lib: [encoding(lib).is_special_token(t) for t in tokens],
    ):
        ours, reference = both(call)
        assert ours == reference, f"ours={ours!r}\nreference={reference!r}\ntokens={tokens!r}"


@strategies.DIFFERENTIAL
@given(
    strategies.st.one_of(
        strategies.texts,
        strategies.st.text(
            strategies.st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=6
        ),
    ),
    strategies.st.sampled_from(["default", "all", "none", "start_only", "disallow_none"]),
)
def test_encoding_text_matches_reference(text: str, mode: str) -> None:
    """encode(): special-token text rejected/allowed/ordinary, lone surrogates, as the reference."""
    kwargs: dict[str, Any] = {
        "default": {},
        "all": {"allowed_special": "all"},
        "none": {"disallowed_special": ()},
        "start_only": {"allowed_special": {"<|start|>"}},
        "disallow_none": {"allowed_special": {"<|end|>"}, "disallowed_special": ()},
    }[mode]
    ours, reference = both(lambda lib: encoding(lib).encode(text, **kwargs))
    assert ours == reference, f"ours={ours!r}\nreference={reference!r}"
