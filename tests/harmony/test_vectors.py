"""Every case of harmony-vectors.json (produced by openai-harmony 0.0.8) reproduced by `harmony`.

The JSON is committed under tests/harmony/data so these tests never depend on a directory outside
the repository; spec §15 describes its structure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import harmony

VECTORS_PATH = Path(__file__).resolve().parent / "data" / "harmony-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
# Where CI keeps the shared original (beside the clone); the committed copy must not drift.
SHARED_VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "harmony-vectors.json"


@pytest.mark.skipif(not SHARED_VECTORS_PATH.exists(), reason="no shared/ beside the clone")
def test_committed_vectors_are_the_shared_vectors() -> None:
    assert json.loads(SHARED_VECTORS_PATH.read_text(encoding="utf-8")) == VECTORS


@pytest.fixture(scope="module")
def enc() -> harmony.HarmonyEncoding:
    return harmony.load_harmony_encoding(harmony.HarmonyEncodingName.HARMONY_GPT_OSS)


def _cases(kind: str) -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in VECTORS[kind]]


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


SYSTEM_FIELDS = (
    "model_identity",
    "reasoning_effort",
    "conversation_start_date",
    "knowledge_cutoff",
    "channel_config",
    "tools",
)


def _with_explicit_nones(conversation: dict[str, Any]) -> dict[str, Any]:
    """Vectors store SystemContent.to_dict(), which omits None fields; a missing field was None."""
    messages = []
    for message in conversation["messages"]:
        contents = message["content"]
        if isinstance(contents, list):
            contents = [
                {field: c.get(field) for field in SYSTEM_FIELDS} | c
                if c.get("type") == "system_content"
                else c
                for c in contents
            ]
        messages.append(message | {"content": contents})
    return {"messages": messages}


def _render(enc: harmony.HarmonyEncoding, case: dict[str, Any]) -> list[int]:
    conversation = harmony.Conversation.from_json(
        json.dumps(_with_explicit_nones(case["conversation"]))
    )
    drop = case["auto_drop_analysis"]
    config = None if drop is None else harmony.RenderConversationConfig(auto_drop_analysis=drop)
    method = case["method"]
    if method == "completion":
        return enc.render_conversation_for_completion(
            conversation, harmony.Role(case["next_turn_role"]), config
        )
    if method == "conversation":
        return enc.render_conversation(conversation, config)
    if method == "training":
        return enc.render_conversation_for_training(conversation, config)
    options = case.get("render_options")
    render_options = None if options is None else harmony.RenderOptions(**options)
    (message,) = conversation.messages
    return enc.render(message, render_options)


@pytest.mark.parametrize("case", _cases("render"))
def test_render_vector(enc: harmony.HarmonyEncoding, case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(Exception) as raised:
            _render(enc, case)
        assert _error_text(raised.value) == case["error"]
        return
    tokens = _render(enc, case)
    assert tokens == case["tokens"]
    assert enc.decode_utf8(tokens) == case["text"]


def _role(value: str | None) -> harmony.Role | None:
    return None if value is None else harmony.Role(value)


@pytest.mark.parametrize("case", _cases("parse"))
def test_parse_vector(enc: harmony.HarmonyEncoding, case: dict[str, Any]) -> None:
    if case["text"] is not None:  # None: the tokens hold an undecodable id
        assert enc.decode(case["tokens"]) == case["text"]
    call = lambda: enc.parse_messages_from_completion_tokens(  # noqa: E731
        case["tokens"], _role(case["role"]), strict=case["strict"]
    )
    if "error" in case:
        with pytest.raises(harmony.HarmonyError) as raised:
            call()
        assert _error_text(raised.value) == case["error"]
        return
    assert [m.to_dict() for m in call()] == case["messages"]


@pytest.mark.parametrize("case", _cases("stream"))
def test_stream_vector(enc: harmony.HarmonyEncoding, case: dict[str, Any]) -> None:
    parser = harmony.StreamableParser(enc, _role(case["role"]), strict=case["strict"])
    for token, expected in zip(case["tokens"], case["steps"], strict=True):
        assert expected["token"] == token
        parser.process(token)
        role = parser.current_role
        observed = {
            "token": token,
            "state": parser.state_data,
            "current_role": None if role is None else role.value,
            "current_channel": parser.current_channel,
            "current_recipient": parser.current_recipient,
            "current_content_type": parser.current_content_type,
            "current_content": parser.current_content,
            "last_content_delta": parser.last_content_delta,
            "n_messages": len(parser.messages),
        }
        assert observed == expected
        assert parser.state.value == expected["state"]["state"]
    if case["eos"]:
        parser.process_eos()
    assert case["error"] is None
    assert [m.to_dict() for m in parser.messages] == case["messages"]
    assert parser.tokens == case["tokens"]


MISC = VECTORS["misc"]


def test_stop_tokens_vector(enc: harmony.HarmonyEncoding) -> None:
    assert sorted(enc.stop_tokens()) == MISC["stop_tokens"]
    assert (
        sorted(enc.stop_tokens_for_assistant_actions()) == MISC["stop_tokens_for_assistant_actions"]
    )


def test_special_token_count_vector(enc: harmony.HarmonyEncoding) -> None:
    assert len(enc.special_tokens_set) == MISC["special_tokens_count"]


def test_encode_vectors(enc: harmony.HarmonyEncoding) -> None:
    assert enc.encode("hello world") == MISC["hello_world"]
    assert enc.encode("<|start|>", disallowed_special=()) == MISC["start_as_text"]


def test_builtin_namespace_vectors() -> None:
    assert harmony.ToolNamespaceConfig.browser().model_dump() == MISC["browser_ns"]
    assert harmony.ToolNamespaceConfig.python().model_dump() == MISC["python_ns"]


def test_system_content_default_dict_vector() -> None:
    assert harmony.SystemContent.new().to_dict() == MISC["system_content_default_to_dict"]


def test_conversation_to_json_vector() -> None:
    conversation = harmony.Conversation.from_messages(
        [
            harmony.Message.from_role_and_content(harmony.Role.USER, "hi"),
            harmony.Message.from_role_and_content(harmony.Role.ASSISTANT, "x").with_channel(
                "final"
            ),
        ]
    )
    assert conversation.to_json() == MISC["conversation_to_json_example"]
