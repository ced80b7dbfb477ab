"""Sealed reasoning through the real server (issue 20, item 4), on scripted model output.

Two API keys on one server: a token one key received does not open for the other, nor under
another model name, nor after the TTL, nor under a removed key; each of these refusals is the
same 400 as a tampered token (same status, code, parameter and message). Rotation: a token
sealed before the key rotated opens after it. `--require-sealed-reasoning` refuses reasoning
the server did not seal, on both surfaces.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from proxy.backends.scripted import Script, ScriptedBackend
from proxy.core.caller import caller_for_key
from proxy.core.conversation import load_encoding
from proxy.core.sealing import ReasoningSealer
from proxy.server.settings import ProxyConfig
from tests.proxy.helpers import toks
from tests.support.server_fixtures import TEST_DATE

OLD_KEY, NEW_KEY = bytes(range(32)), bytes(range(100, 132))
ALICE, BOB = "alice-secret-key", "bob-secret-key"
MODEL, ALIAS = "scripted-gpt-oss", "gpt-oss-alias"
PLAN = "<|channel|>analysis<|message|>Secret plan: call the tool.<|end|><|start|>assistant"
ANSWER = PLAN + "<|channel|>final<|message|>Done.<|return|>"


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def config(key: bytes = OLD_KEY, **changes: Any) -> ProxyConfig:
    return ProxyConfig(
        served_model_names=(MODEL, ALIAS),
        conversation_date=TEST_DATE,
        api_keys=(ALICE, BOB),
        reasoning_key=b64(key),
        **changes,
    )


def serve(make_server, cfg: ProxyConfig):  # noqa: ANN001, ANN201 - fixture factory
    backend = ScriptedBackend(Script([toks(ANSWER)]))
    return make_server(cfg, backend)


def post(server, key: str, body: dict[str, Any], path: str = "/v1/responses") -> httpx.Response:
    return httpx.post(
        server.url + path,
        json=body,
        headers={"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"},
        timeout=30,
    )


def sealed_reasoning(server, key: str = ALICE, model: str = MODEL) -> str:
    reply = post(
        server,
        key,
        {
            "model": model,
            "input": "Plan?",
            "store": False,
            "include": ["reasoning.encrypted_content"],
        },
    )
    assert reply.status_code == 200, reply.text
    reasoning = reply.json()["output"][0]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"].startswith("hpr2.")
    return reasoning["encrypted_content"]


def replay(server, token: str, key: str = ALICE, model: str = MODEL) -> httpx.Response:
    return post(
        server,
        key,
        {
            "model": model,
            "store": False,
            "input": [
                {"role": "user", "content": "Plan?"},
                {"type": "reasoning", "summary": [], "encrypted_content": token},
                {"role": "user", "content": "Go on."},
            ],
        },
    )


def tampered(token: str) -> str:
    return token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]


def refusal(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == "input[1].encrypted_content"
    assert error["code"] == "invalid_encrypted_content"
    return error


def test_a_token_opens_for_its_own_key_and_model(make_server):
    server = serve(make_server, config())
    token = sealed_reasoning(server)
    assert replay(server, token).status_code == 200
    prompt = load_encoding().decode(server.backend.requests[-1].prompt_token_ids)
    assert "<|channel|>analysis<|message|>Secret plan: call the tool.<|end|>" in prompt


def test_another_keys_token_is_refused_exactly_like_a_tampered_one(make_server):
    server = serve(make_server, config())
    token = sealed_reasoning(server)
    foreign = refusal(replay(server, token, key=BOB))
    assert foreign == refusal(replay(server, tampered(token)))
    assert "alice" not in foreign["message"].lower()
    # Bob's own token still opens for Bob.
    assert replay(server, sealed_reasoning(server, BOB), key=BOB).status_code == 200


def test_a_token_under_another_model_name_is_refused(make_server):
    server = serve(make_server, config())
    token = sealed_reasoning(server)
    assert refusal(replay(server, token, model=ALIAS)) == refusal(replay(server, tampered(token)))


def test_an_expired_token_is_refused_like_a_tampered_one(make_server):
    """The server's key, the caller's owner and model, but sealed by a clock two hours back."""
    server = serve(make_server, config(reasoning_ttl_seconds=3600))
    owner = caller_for_key(ALICE.encode()).owner
    fresh = ReasoningSealer(OLD_KEY, clock=lambda: time.time() - 600)
    assert replay(server, fresh.seal("plan", owner=owner, model=MODEL)).status_code == 200
    old = ReasoningSealer(OLD_KEY, clock=lambda: time.time() - 7200)
    token = old.seal("plan", owner=owner, model=MODEL)
    assert refusal(replay(server, token)) == refusal(replay(server, tampered(token)))


def test_rotation_keeps_live_tokens_and_a_removed_key_ends_them(make_server):
    before = serve(make_server, config(OLD_KEY))
    token = sealed_reasoning(before)
    rotated = serve(make_server, config(NEW_KEY, reasoning_previous_keys=(b64(OLD_KEY),)))
    assert replay(rotated, token).status_code == 200
    assert replay(rotated, sealed_reasoning(rotated)).status_code == 200
    removed = serve(make_server, config(NEW_KEY))
    assert refusal(replay(removed, token)) == refusal(replay(removed, tampered(token)))


def test_an_old_format_token_is_refused_as_an_unsupported_version(make_server):
    server = serve(make_server, config())
    token = "hpr1." + sealed_reasoning(server)[5:]
    error = refusal(replay(server, token))
    assert "unsupported version ('hpr1'; this server reads 'hpr2')" in error["message"]


def test_plain_reasoning_is_accepted_by_default(make_server):
    server = serve(make_server, config())
    body = {
        "model": MODEL,
        "input": [
            {"role": "user", "content": "Plan?"},
            {
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "x"}],
            },
        ],
    }
    assert post(server, ALICE, body).status_code == 200


def test_require_sealed_reasoning_refuses_plain_reasoning_items(make_server):
    server = serve(make_server, config(require_sealed_reasoning=True))
    plain = {
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "x"}],
    }
    body = {
        "model": MODEL,
        "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        + [{"role": "user", "content": "c"}, plain],
    }
    reply = post(server, ALICE, body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "input[3]" and error["code"] == "unsealed_reasoning"
    assert "encrypted_content" in error["message"]
    # Sealed reasoning, and a reasoning item with no text (nothing to inject), still pass.
    assert replay(server, sealed_reasoning(server)).status_code == 200
    empty = {"type": "reasoning", "summary": [], "content": []}
    assert post(server, ALICE, {**body, "input": [*body["input"][:3], empty]}).status_code == 200


def messages_body(thinking_block: dict[str, Any], model: str = MODEL) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Plan?"},
            {"role": "assistant", "content": [thinking_block, {"type": "text", "text": "Ok."}]},
            {"role": "user", "content": "Go on."},
        ],
    }


def signed_thinking(server, key: str = ALICE) -> dict[str, Any]:
    reply = post(
        server,
        key,
        {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Plan?"}]},
        path="/v1/messages",
    )
    assert reply.status_code == 200, reply.text
    block = reply.json()["content"][0]
    assert block["type"] == "thinking" and block["signature"].startswith("hpr2.")
    return block


def test_a_thinking_signature_is_bound_to_its_key(make_server):
    server = serve(make_server, config())
    block = signed_thinking(server)
    assert post(server, ALICE, messages_body(block), "/v1/messages").status_code == 200
    foreign = post(server, BOB, messages_body(block), "/v1/messages")
    forged = post(
        server,
        ALICE,
        messages_body({**block, "signature": tampered(block["signature"])}),
        "/v1/messages",
    )
    assert foreign.status_code == forged.status_code == 400
    assert foreign.json() == forged.json()
    assert foreign.json()["error"]["type"] == "invalid_request_error"


def test_require_sealed_reasoning_refuses_unsigned_thinking(make_server):
    server = serve(make_server, config(require_sealed_reasoning=True))
    unsigned = {"type": "thinking", "thinking": "my own chain of thought"}
    reply = post(server, ALICE, messages_body(unsigned), "/v1/messages")
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert message.startswith("messages.1.content.0:") and "signature" in message
    assert (
        post(server, ALICE, messages_body(signed_thinking(server)), "/v1/messages").status_code
        == 200
    )


@pytest.mark.parametrize("required", [False, True])
def test_chat_reasoning_has_no_sealed_form_and_is_refused_when_required(make_server, required):
    server = serve(make_server, config(require_sealed_reasoning=required))
    body = {
        "model": MODEL,
        "max_tokens": 16,
        "messages": [
            {"role": "user", "content": "Plan?"},
            {"role": "assistant", "content": "Ok.", "reasoning_content": "my own plan"},
            {"role": "user", "content": "Go on."},
        ],
    }
    reply = post(server, ALICE, body, "/v1/chat/completions")
    if not required:
        assert reply.status_code == 200
        return
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "messages[1].reasoning_content"
    assert error["code"] == "unsealed_reasoning"


@pytest.mark.parametrize("reasoning_key", [OLD_KEY, NEW_KEY])
def test_no_refusal_is_a_server_error(make_server, reasoning_key):
    """Hostile tokens of every shape: always the 400, never a 5xx."""
    server = serve(make_server, config(reasoning_key))
    token = sealed_reasoning(server)
    for hostile in ["", "hpr2.", "hpr2." + "A" * 200, token + "A", token[:-1], "hpr9.x", "é" * 9]:
        assert replay(server, hostile).status_code == 400
