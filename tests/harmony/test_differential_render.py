"""Rendering agrees with the reference on generated conversations (spec §2-§7).

Each property builds the same conversation in both libraries from one neutral spec and compares
the outcome: the token list, or the exception class and message.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given

from tests.harmony import strategies
from tests.harmony.differential import REFERENCE, both, build_conversation, encoding, render


def _assert_same(ours: Any, reference: Any, context: Any) -> None:
    assert ours == reference, f"ours={ours!r}\nreference={reference!r}\ncase={context!r}"


@strategies.DIFFERENTIAL
@given(strategies.render_requests())
def test_rendered_tokens_and_errors_match_reference(request: dict[str, Any]) -> None:
    ours, reference = both(lambda lib: render(lib, request))
    _assert_same(ours, reference, request)


@strategies.DIFFERENTIAL
@given(strategies.tool_loop_conversations(), strategies.st.sampled_from([None, True, False]))
def test_multi_turn_tool_loops_render_like_reference(messages: list, drop: bool | None) -> None:
    for method in ("completion", "conversation", "training"):
        request = {
            "method": method,
            "messages": messages,
            "auto_drop_analysis": drop,
            "next_turn_role": "assistant",
            "render_options": None,
        }
        ours, reference = both(lambda lib, request=request: render(lib, request))
        _assert_same(ours, reference, request)


@strategies.DIFFERENTIAL
@given(strategies.render_requests())
def test_rendered_text_decodes_like_reference(request: dict[str, Any]) -> None:
    rendered, _ = both(lambda lib: render(lib, request))
    if rendered.error is not None:
        return
    ours, reference = both(lambda lib: encoding(lib).decode_utf8(rendered.value))
    _assert_same(ours, reference, request)


@strategies.DIFFERENTIAL
@given(strategies.conversations)
def test_conversation_json_shapes_match_reference(messages: list) -> None:
    ours, reference = both(lambda lib: build_conversation(lib, messages).to_json())
    _assert_same(ours, reference, messages)
    ours, reference = both(lambda lib: [m.to_dict() for m in build_conversation(lib, messages)])
    _assert_same(ours, reference, messages)


@strategies.DIFFERENTIAL
@given(strategies.conversations)
def test_conversation_json_round_trip_matches_reference(messages: list) -> None:
    payload = build_conversation(REFERENCE, messages).to_json()
    ours, reference = both(lambda lib: lib.Conversation.from_json(payload).to_json())
    _assert_same(ours, reference, messages)


@strategies.DIFFERENTIAL
@given(strategies.tools)
def test_tool_schema_rendering_matches_reference(tool: dict[str, Any]) -> None:
    """One function tool in a developer message: isolates the JSON-schema -> TypeScript converter."""
    dev = {"calls": [("with_function_tools", [tool])]}
    request = {
        "method": "conversation",
        "messages": [
            {
                "role": "developer",
                "name": None,
                "contents": [("developer", dev)],
                "channel": None,
                "recipient": None,
                "content_type": None,
            }
        ],
        "auto_drop_analysis": None,
        "next_turn_role": "assistant",
        "render_options": None,
    }
    ours, reference = both(lambda lib: render(lib, request))
    _assert_same(ours, reference, tool)


@strategies.DIFFERENTIAL
@given(strategies.st.lists(strategies.message_dicts, max_size=3))
def test_messages_from_json_dicts_match_reference(dicts: list[dict[str, Any]]) -> None:
    """Message.from_dict / Conversation.from_json, including invalid roles and content variants."""
    for d in dicts:
        ours, reference = both(lambda lib, d=d: lib.Message.from_dict(d).to_dict())
        _assert_same(ours, reference, d)
    payload = json.dumps({"messages": dicts})
    ours, reference = both(lambda lib: lib.Conversation.from_json(payload).to_json())
    _assert_same(ours, reference, dicts)
