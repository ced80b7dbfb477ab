"""The wire-compatibility cases: a fixed request set, how to serve it, and how to normalise it.

`tests/compat/record_wire.py` ran these requests against the server as it was before the core's
refactor and wrote what came back to `wire_bytes.json`; `tests/compat/test_wire_bytes.py`
runs them against the current code and compares, byte for byte after normalisation.

The server is the real app (`create_app`) on a real uvicorn server on 127.0.0.1, in front of a
`ScriptedBackend`: each step of a case programs what the "model" generates (a Harmony text, or
the realistic replay of `tests/support/replay.py`: reasoning then an answer, or a tool call when
the request declares tools), with its chunking and faults. Requests go out as raw HTTP (httpx),
so the recorded bodies are the exact bytes: JSON key order, separators, SSE framing.

Only what is random or time-dependent is normalised (`Normaliser`):
* ids: `chatcmpl-`, `resp_`, `msg_`, `rs_`, `fc_`, `fco_`, `ctc_`, `call_` followed by a random
  suffix (16+ letters/digits), and the generated `x-request-id` header (24 hex digits). Each
  distinct suffix becomes `<idN>`, numbered in order of first appearance within a case, so
  equal ids stay equal (`chatcmpl-<id1>` and `x-request-id: <id1>` are the same request id);
* `created`, `created_at` and `completed_at` numbers become -1;
* `encrypted_content` values become `<sealedN>` (random nonce), equality kept;
* SSE keep-alive comments (`: ping - <time>`) are dropped; the `date` header is not recorded.
Everything else, including status codes, the other headers (in order) and every body byte, is
compared as recorded.

Each exchange is recorded as the request line and (normalised) body, so a case edited after
recording is reported as such, then the status, the content type, the headers and the body.

The module is importable both from the pre-refactor checkout (old module paths) and after it:
the few server imports that moved are chosen at runtime by which file exists in the checkout
being tested (`_resolve`), and every `proxy` module loaded is checked to come from that checkout
(`check_one_checkout`: the shared venv's editable install points at another one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import hashlib
import importlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from proxy.backends.scripted import Script, ScriptedBackend
from tests.support.replay import WEATHER_TOOL, completion_for

FIXTURE = Path(__file__).with_name("wire_bytes.json")
MODEL = "scripted-gpt-oss"
CONVERSATION_DATE = "2026-01-15"  # pinned: prompts (and so usage counts) are reproducible
REPLAY_TOKENS = 40  # small realistic completions keep the fixture readable
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"

# Where the names that moved in the layout refactor live: current path first, then the old one.
_MODULES: dict[str, tuple[str, ...]] = {
    "create_app": ("proxy.server.app", "proxy.app"),
    "ProxyConfig": ("proxy.server.settings", "proxy.config"),
    "load_encoding": ("proxy.core.conversation", "proxy.conversation"),
}


def _checkout() -> Path:
    """The directory holding the `proxy` package being tested (the worktree on PYTHONPATH)."""
    import proxy

    return Path(proxy.__file__).resolve().parent.parent


def _resolve(name: str) -> Any:
    """`name` from the first of its candidate modules that exists as a file in this checkout.

    Chosen by file, not by trying imports: with the editable install of another checkout, an
    import missing here would silently load that checkout's module instead.
    """
    root = _checkout()
    for module in _MODULES[name]:
        base = root.joinpath(*module.split("."))
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return getattr(importlib.import_module(module), name)
    raise ImportError(f"{name}: none of {_MODULES[name]} exists under {root}")


def check_one_checkout() -> None:
    """Every loaded `proxy` module comes from the checkout under test (none from another)."""
    root = _checkout()
    strays = sorted(
        f"{name} ({module.__file__})"
        for name, module in list(sys.modules.items())
        if (name == "proxy" or name.startswith("proxy."))
        and getattr(module, "__file__", None)
        and not Path(module.__file__).resolve().is_relative_to(root)
    )
    if strays:
        raise RuntimeError(f"modules loaded from outside {root}: {', '.join(strays)}")


def toks(text: str) -> list[int]:
    """Token ids of a Harmony text, special tokens included (what the scripted model emits)."""
    return list(_resolve("load_encoding")().encode(text, allowed_special="all"))


# ---------------------------------------------------------------- what the model generates


@dataclass(frozen=True)
class Output:
    """One step's scripted generation: Harmony `texts` (one per choice, cycled) or, with
    `replay`, the realistic completion of about that many tokens chosen by the prompt."""

    texts: tuple[str, ...] = ()
    replay: int = 0
    chunk_sizes: tuple[int, ...] = (1,)
    fail_after: int | None = None

    def program(self, backend: ScriptedBackend) -> None:
        base = Script(chunk_sizes=self.chunk_sizes, fail_after=self.fail_after)
        if self.replay:
            size = self.replay

            def script_for(prompt: list[int]) -> Script:
                return dataclasses.replace(base, choices=[list(completion_for(prompt, size))])

            backend.script_for = script_for
        else:
            backend.script_for = None
            backend.script = dataclasses.replace(base, choices=[toks(t) for t in self.texts])


REPLAY = Output(replay=REPLAY_TOKENS)

THINK = "<|channel|>analysis<|message|>Let me see.<|end|><|start|>assistant"


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


def call(recipient: str, arguments: str) -> str:
    return f" to={recipient}<|channel|>commentary <|constrain|>json<|message|>{arguments}<|call|>"


# ---------------------------------------------------------------- requests

Prior = list[bytes]  # the raw bodies of the case's earlier steps
Body = dict[str, Any] | Callable[[Prior], dict[str, Any]] | None


@dataclass(frozen=True)
class Step:
    """One HTTP exchange; `body` and `path` may be computed from the earlier steps' replies."""

    body: Body = None
    path: str | Callable[[Prior], str] = CHAT
    method: str = "POST"
    output: Output = REPLAY
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]


def _case(name: str, *steps: Step) -> Case:
    return Case(name, steps)


def chat(content: str = "What's the weather in Paris, and what to wear?", **extra: Any) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def responses(input: Any = "What's the weather in Paris?", **extra: Any) -> dict:
    return {"model": MODEL, "input": input, **extra}


def final_response(raw: bytes) -> dict[str, Any]:
    """The Response object of a /v1/responses reply (JSON, or the last event of a stream)."""
    text = raw.decode()
    if text.startswith("event:"):
        data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        return json.loads(data[-1])["response"]
    return json.loads(text)


def tamper(sealed: str) -> str:
    """The sealed text with one character of its authentication tag changed (its last 16
    bytes; 10 characters from the end every bit of the character counts, whatever the
    padding, so the token can never decode to the same bytes)."""
    at = len(sealed) - 10
    return sealed[:at] + ("A" if sealed[at] != "A" else "B") + sealed[at + 1 :]


USAGE = {"stream_options": {"include_usage": True}}
TOOLS = {"tools": [WEATHER_TOOL]}
# The same function as a Responses tool (flat, not under "function").
RESPONSES_WEATHER = {"type": "function", **WEATHER_TOOL["function"]}
NAMESPACE = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools for spawning and managing sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "spawn_agent",
            "description": "Start a sub-agent",
            "strict": False,
            "parameters": {
                "type": "object",
                "properties": {"task": {"type": "string"}},
                "required": ["task"],
            },
        }
    ],
}
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"},
}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch"
CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
    "required": ["city", "degrees"],
    "additionalProperties": False,
}
CITY_JSON = final('{"city":"Oslo","degrees":3}')
TWO_ANSWERS = Output(
    texts=(
        "<|channel|>analysis<|message|>First thought.<|end|><|start|>assistant"
        + final("Answer one."),
        THINK + final("Answer two, a longer one."),
    ),
    chunk_sizes=(2,),
)
SHORT = Output(texts=(THINK + final("Hi there, café?"),))
WEATHER_CALL = THINK + call("functions.get_weather", '{"location":"Oslo"}')
HISTORY = [
    {"role": "user", "content": "What's the weather in Oslo?"},
    {
        "type": "function_call",
        "call_id": "call_wx1",
        "name": "get_weather",
        "arguments": '{"location":"Oslo"}',
    },
    {"type": "function_call_output", "call_id": "call_wx1", "output": "3 C, snow"},
]
CHAT_HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What's the weather in Oslo?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_wx1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_wx1", "content": "3 C, snow"},
]


def _encrypted_replay(prior: Prior, *, tampered: bool = False) -> dict[str, Any]:
    first = final_response(prior[0])
    reasoning, fc = first["output"][0], first["output"][-1]
    sealed = reasoning["encrypted_content"]
    return responses(
        [
            {"role": "user", "content": "Weather in Rome?"},
            {
                "type": "reasoning",
                "id": reasoning["id"],
                "summary": [],
                "content": None,
                "encrypted_content": tamper(sealed) if tampered else sealed,
            },
            {
                "type": "function_call",
                "call_id": fc["call_id"],
                "name": fc["name"],
                "arguments": fc["arguments"],
            },
            {"type": "function_call_output", "call_id": fc["call_id"], "output": "warm"},
        ],
        tools=[RESPONSES_WEATHER],
        store=False,
        stream=not tampered,
    )


def _continue(prior: Prior) -> dict[str, Any]:
    first = final_response(prior[0])
    return responses(
        [
            {
                "type": "function_call_output",
                "call_id": first["output"][-1]["call_id"],
                "output": "5",
            }
        ],
        previous_response_id=first["id"],
        tools=[RESPONSES_WEATHER],
        stream=True,
    )


def _stored(index: int, suffix: str = "") -> Callable[[Prior], str]:
    return lambda prior: f"{RESPONSES}/{final_response(prior[index])['id']}{suffix}"


CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------ chat: answers
    _case("chat_answer", Step(chat())),
    _case("chat_answer_stream", Step(chat(stream=True))),
    _case("chat_answer_stream_usage", Step(chat(stream=True, **USAGE))),
    _case(
        "chat_answer_stream_chunked",
        Step(
            chat(stream=True, **USAGE), output=Output(replay=REPLAY_TOKENS, chunk_sizes=(1, 8, 3))
        ),
    ),
    _case(
        "chat_client_request_id",
        Step(chat(), headers=(("x-request-id", "compat-fixed-id"),)),
        Step(chat(stream=True), headers=(("x-request-id", "compat-fixed-id"),)),
    ),
    _case(
        "chat_no_reasoning",
        Step(chat(include_reasoning=False)),
        Step(chat(include_reasoning=False, stream=True)),
    ),
    _case("chat_n2", Step(chat(n=2), output=TWO_ANSWERS)),
    _case("chat_n2_stream_usage", Step(chat(n=2, stream=True, **USAGE), output=TWO_ANSWERS)),
    _case(
        "chat_stop_strings",
        # "°C" ends inside a token; "weather" is only in the reasoning, "mild" in the answer.
        Step(chat(stop=["°C", "umbrella"])),
        Step(chat(stop=["weather", "mild"], stream=True, **USAGE)),
    ),
    _case(
        "chat_logprobs",
        Step(chat(logprobs=True, top_logprobs=2), output=SHORT),
        Step(chat(logprobs=True, stream=True), output=SHORT),
    ),
    _case(
        "chat_json_schema",
        Step(
            chat(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "city", "schema": CITY_SCHEMA, "strict": True},
                }
            ),
            output=Output(texts=(THINK + CITY_JSON,)),
        ),
        Step(
            chat(stream=True, response_format={"type": "json_object"}),
            output=Output(texts=(THINK + CITY_JSON,), chunk_sizes=(3,)),
        ),
    ),
    _case("chat_tool_history", Step({"model": MODEL, "messages": CHAT_HISTORY, **TOOLS})),
    # ------------------------------------------------------------ chat: tools
    _case("chat_tool_auto", Step(chat(**TOOLS))),
    _case("chat_tool_auto_stream", Step(chat(stream=True, **USAGE, **TOOLS))),
    _case("chat_tool_required", Step(chat(tool_choice="required", stream=True, **USAGE, **TOOLS))),
    _case(
        "chat_tool_named",
        Step(chat(tool_choice={"type": "function", "function": {"name": "get_weather"}}, **TOOLS)),
        Step(
            chat(
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                stream=True,
                **TOOLS,
            )
        ),
    ),
    _case(
        "chat_tool_none",
        Step(chat(tool_choice="none", **TOOLS)),
        Step(chat(tool_choice="none", stream=True, **TOOLS)),
    ),
    _case(
        "chat_tool_not_parallel",
        Step(chat(parallel_tool_calls=False, **TOOLS)),
        Step(chat(parallel_tool_calls=False, stream=True, **TOOLS)),
    ),
    *(
        _case(
            f"chat_tool_chunks_{'_'.join(map(str, sizes))}",
            Step(
                chat(stream=True, **TOOLS),
                output=Output(replay=REPLAY_TOKENS, chunk_sizes=sizes),
            ),
        )
        for sizes in ((3,), (2, 7, 1), (64,))
    ),
    # ------------------------------------------------------------ chat: faults, cuts, bad output
    _case(
        "chat_engine_failure",
        Step(chat(stream=True, **USAGE), output=Output(replay=REPLAY_TOKENS, fail_after=12)),
        Step(chat(), output=Output(replay=REPLAY_TOKENS, fail_after=12)),
        Step(chat(stream=True), output=Output(replay=REPLAY_TOKENS, fail_after=0)),
    ),
    _case(
        "chat_max_tokens",
        Step(chat(max_tokens=20, stream=True, **USAGE)),
        Step(chat(max_tokens=20)),
        Step(chat(max_completion_tokens=24, **TOOLS)),
    ),
    _case(
        "chat_malformed_doubled_start",
        Step(
            chat(stream=True),
            output=Output(
                texts=(
                    "<|channel|>analysis<|message|>Hmm.<|end|><|start|><|start|>assistant"
                    + final("Hi"),
                )
            ),
        ),
    ),
    _case(
        "chat_malformed_undeclared_tool",
        Step(
            chat(stream=True, **TOOLS),
            output=Output(texts=(THINK + call("functions.delete_all", '{"force":true}'),)),
        ),
        Step(chat(**TOOLS), output=Output(texts=(THINK + call("delete_all", "{}"),))),
    ),
    _case(
        "chat_malformed_arguments_and_headers",
        Step(
            chat(stream=True, **TOOLS),
            output=Output(
                texts=(
                    "<|channel|>commentary ––x to=functions.get_weather<|message|>"
                    '{"location": "Pa<|call|>',
                )
            ),
        ),
        Step(chat(), output=Output(texts=("I can't help with that.",))),
    ),
    # ------------------------------------------------------------ chat: 4xx bodies
    _case(
        "chat_errors",
        Step(
            chat(
                tools=[
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": 5},
                        },
                    }
                ]
            )
        ),
        Step(
            chat(tool_choice={"type": "function", "function": {"name": "nope"}}, **TOOLS),
        ),
        Step(chat("bad \ud800 surrogate")),
        Step({"model": MODEL, "messages": [{"role": "user", "content": "x"}] * 2049}),
        Step(chat(n=0)),
        Step(chat(model="no-such-model")),
        Step({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}),
    ),
    # ------------------------------------------------------------ responses
    _case("responses_text", Step(responses(), path=RESPONSES)),
    _case("responses_text_stream", Step(responses(stream=True), path=RESPONSES)),
    _case(
        "responses_echoed_fields",
        Step(
            responses(
                instructions="Answer in French.",
                metadata={"k": "v"},
                reasoning={"effort": "low", "summary": "auto"},
                prompt_cache_key="session-1",
                temperature=0.5,
                top_p=0.9,
                user="u-1",
                parallel_tool_calls=False,
                store=False,
            ),
            path=RESPONSES,
        ),
    ),
    _case(
        "responses_function_call",
        Step(responses(tools=[RESPONSES_WEATHER]), path=RESPONSES),
        Step(
            responses(tools=[RESPONSES_WEATHER], stream=True),
            path=RESPONSES,
            output=Output(replay=REPLAY_TOKENS, chunk_sizes=(2, 7, 1)),
        ),
    ),
    _case(
        "responses_item_history",
        Step(responses(HISTORY, tools=[RESPONSES_WEATHER]), path=RESPONSES, output=SHORT),
        Step(
            responses(HISTORY, tools=[RESPONSES_WEATHER], stream=True),
            path=RESPONSES,
            output=SHORT,
        ),
    ),
    _case(
        "responses_namespace_tool",
        Step(
            responses(
                "Spawn one",
                tools=[RESPONSES_WEATHER, NAMESPACE, {"type": "web_search"}],
                stream=True,
            ),
            path=RESPONSES,
            output=Output(texts=(THINK + call("multi_agent_v1.spawn_agent", '{"task":"x"}'),)),
        ),
    ),
    _case(
        "responses_custom_tool",
        Step(
            responses("Add a file", tools=[APPLY_PATCH], stream=True),
            path=RESPONSES,
            output=Output(
                texts=(
                    THINK + f" to=functions.apply_patch<|channel|>commentary<|message|>{PATCH}"
                    "<|call|>",
                )
            ),
        ),
        Step(
            responses("Add a file", tools=[APPLY_PATCH]),
            path=RESPONSES,
            output=Output(
                texts=(
                    THINK + f" to=functions.apply_patch<|channel|>commentary<|message|>{PATCH}"
                    "<|call|>",
                ),
            ),
        ),
    ),
    _case(
        "responses_json_schema",
        Step(
            responses(
                "Oslo?",
                text={
                    "format": {
                        "type": "json_schema",
                        "name": "city",
                        "schema": CITY_SCHEMA,
                        "strict": True,
                    }
                },
            ),
            path=RESPONSES,
            output=Output(texts=(THINK + CITY_JSON,)),
        ),
        Step(
            responses(
                "Oslo?",
                stream=True,
                text={"format": {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA}},
            ),
            path=RESPONSES,
            output=Output(
                texts=(
                    THINK
                    + "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant"
                    + CITY_JSON,
                )
            ),
        ),
    ),
    _case(
        "responses_encrypted_reasoning",
        Step(
            responses(
                "Weather in Rome?",
                tools=[RESPONSES_WEATHER],
                store=False,
                include=["reasoning.encrypted_content"],
            ),
            path=RESPONSES,
            output=Output(
                texts=(
                    "<|channel|>analysis<|message|>Secret plan: call the tool.<|end|>"
                    "<|start|>assistant" + call("functions.get_weather", '{"location":"Rome"}'),
                )
            ),
        ),
        Step(_encrypted_replay, path=RESPONSES, output=Output(texts=(THINK + final("Warm."),))),
        Step(lambda prior: _encrypted_replay(prior, tampered=True), path=RESPONSES),
        Step(
            responses("Hi", stream=True, store=False, include=["reasoning.encrypted_content"]),
            path=RESPONSES,
            output=SHORT,
        ),
    ),
    _case(
        "responses_store_chain",
        Step(
            responses("Weather in Oslo?", tools=[RESPONSES_WEATHER]),
            path=RESPONSES,
            output=Output(texts=(WEATHER_CALL,)),
        ),
        Step(_continue, path=RESPONSES, output=SHORT),
        Step(method="GET", path=_stored(1)),
        Step(method="GET", path=_stored(1, "/input_items")),
        Step(method="DELETE", path=_stored(0)),
        Step(method="GET", path=_stored(0)),
        Step(
            lambda prior: responses("Again", previous_response_id=final_response(prior[0])["id"]),
            path=RESPONSES,
        ),
        Step(responses("Not kept", store=False), path=RESPONSES, output=SHORT),
        Step(method="GET", path=_stored(7)),
    ),
    _case(
        "responses_max_output_tokens",
        Step(responses(max_output_tokens=12), path=RESPONSES),
        Step(responses(max_output_tokens=12, stream=True), path=RESPONSES),
        Step(
            responses(tools=[RESPONSES_WEATHER], max_output_tokens=24, stream=True),
            path=RESPONSES,
        ),
    ),
    _case(
        "responses_engine_failure",
        Step(
            responses(stream=True),
            path=RESPONSES,
            output=Output(replay=REPLAY_TOKENS, fail_after=12),
        ),
        Step(responses(), path=RESPONSES, output=Output(replay=REPLAY_TOKENS, fail_after=12)),
    ),
    _case(
        "responses_context_overflow",
        Step(responses("word " * 9000, stream=True), path=RESPONSES),
        Step(responses("word " * 9000), path=RESPONSES),
    ),
    _case(
        "responses_malformed_output",
        Step(
            responses(stream=True, tools=[RESPONSES_WEATHER]),
            path=RESPONSES,
            output=Output(
                texts=(
                    "<|channel|>analysis<|message|>Hmm.<|end|><|start|><|start|>assistant"
                    + call("functions.delete_all", "{}"),
                )
            ),
        ),
    ),
    _case(
        "responses_errors",
        Step(
            responses(
                [
                    {"role": "user", "content": "Hi"},
                    {"type": "function_call_output", "call_id": "call_x", "output": "1"},
                ]
            ),
            path=RESPONSES,
        ),
        Step(
            responses([{"role": "user", "content": "Hi"}, {"type": "no_such_item"}]),
            path=RESPONSES,
        ),
        Step(responses(instructions="\ud800", stream=True), path=RESPONSES),
        Step(
            responses(text={"format": {"type": "json_schema", "name": 5, "schema": {}}}),
            path=RESPONSES,
        ),
        Step(responses(include=["no.such"]), path=RESPONSES),
        Step(
            responses(tools=[{"type": "namespace", "name": " ", "tools": [RESPONSES_WEATHER]}]),
            path=RESPONSES,
        ),
        Step(responses(previous_response_id="resp_nope"), path=RESPONSES),
        Step(responses(max_output_tokens=10**9), path=RESPONSES),
        Step(responses(tool_choice={"type": "function", "name": "nope"}), path=RESPONSES),
    ),
)


# ---------------------------------------------------------------- normalisation

_ID = re.compile(
    r"(?<![A-Za-z0-9_])(chatcmpl-|resp_|msg_|rs_|fco_|fc_|ctc_|call_)([A-Za-z0-9]{16,})"
)
_TIME = re.compile(r'("(?:created|created_at|completed_at)":\s*)\d+')
_SEALED = re.compile(r'("encrypted_content":\s*")([^"\\]*)(")')
_PING = re.compile(r"^: ping - [^\n]*\n\n", re.MULTILINE)
_GENERATED_REQUEST_ID = re.compile(r"[0-9a-f]{24}")
_UNRECORDED_HEADERS = frozenset({"date"})
_INLINE_REQUEST_BYTES = 4000


class Normaliser:
    """Replaces one case's random and time-dependent values with stable placeholders."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._sealed: dict[str, str] = {}

    def _id(self, value: str) -> str:
        return self._ids.setdefault(value, f"<id{len(self._ids) + 1}>")

    def text(self, text: str) -> str:
        text = _SEALED.sub(
            lambda m: (
                m[1] + self._sealed.setdefault(m[2], f"<sealed{len(self._sealed) + 1}>") + m[3]
            ),
            text,
        )
        text = _ID.sub(lambda m: m[1] + self._id(m[2]), text)
        text = _TIME.sub(r"\g<1>-1", text)
        return _PING.sub("", text)

    def header(self, name: str, value: str) -> str:
        if name == "x-request-id" and _GENERATED_REQUEST_ID.fullmatch(value):
            return self._id(value)
        return self.text(value)


def _body_text(raw: bytes) -> str:
    return raw.decode("utf-8")  # every body the server sends is UTF-8 (JSON or SSE)


def exchange(
    normaliser: Normaliser, method: str, path: str, request: bytes | None, reply: httpx.Response
) -> dict[str, Any]:
    """One recorded request/response pair, normalised."""
    sent = normaliser.text(request.decode()) if request is not None else None
    if sent is not None and len(sent) > _INLINE_REQUEST_BYTES:
        digest = hashlib.sha256(sent.encode()).hexdigest()
        sent = f"<{len(sent)} bytes, sha256 {digest}>"
    headers = [
        [name.decode("latin-1"), normaliser.header(name.decode("latin-1"), value.decode("latin-1"))]
        for name, value in reply.headers.raw
        if name.decode("latin-1").lower() not in _UNRECORDED_HEADERS
    ]
    return {
        "request": f"{method} {normaliser.text(path)}" + ("" if sent is None else f" {sent}"),
        "status": reply.status_code,
        "content_type": reply.headers.get("content-type"),
        "headers": headers,
        "body": normaliser.text(_body_text(reply.content)),
    }


# ---------------------------------------------------------------- serving and running


@dataclass
class WireServer:
    """The real app on a `ScriptedBackend`, served by uvicorn on 127.0.0.1 from its own thread."""

    backend: ScriptedBackend = field(
        default_factory=lambda: ScriptedBackend(model_name=MODEL, record=False)
    )
    url: str = ""
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _server: uvicorn.Server | None = None
    _task: Any = None

    def start(self) -> None:
        create_app, config_class = _resolve("create_app"), _resolve("ProxyConfig")
        config = config_class(served_model_names=(MODEL,), conversation_date=CONVERSATION_DATE)
        app = create_app(config, self.backend)
        check_one_checkout()
        threading.Thread(target=self._loop.run_forever, name="wire-server", daemon=True).start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
        )
        self._task = asyncio.run_coroutine_threadsafe(
            self._server.serve(sockets=[sock]), self._loop
        )
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while True:
                if self._task.done():
                    self._task.result()
                    raise RuntimeError("uvicorn exited during startup")
                if self._server.started and client.get("/ready").status_code == 200:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError("the wire server did not become ready")
                time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._task.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def run(self, case: Case) -> list[dict[str, Any]]:
        """Send the case's steps in order; their normalised exchanges."""
        normaliser = Normaliser()
        prior: Prior = []
        out = []
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for step in case.steps:
                step.output.program(self.backend)
                body = step.body(prior) if callable(step.body) else step.body
                path = step.path(prior) if callable(step.path) else step.path
                # ASCII JSON: lone surrogates go out as \\ud800 escapes, as a client would send.
                content = None if body is None else json.dumps(body).encode()
                headers = dict(step.headers)
                if content is not None:
                    headers["content-type"] = "application/json"
                reply = client.request(step.method, path, content=content, headers=headers)
                prior.append(reply.content)
                out.append(exchange(normaliser, step.method, path, content, reply))
        check_one_checkout()
        return out


_FIELDS = ("request", "status", "content_type", "headers", "body")


def describe_difference(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> str:
    """A readable account of how a case's exchanges differ from the recorded ones."""
    lines: list[str] = []
    if len(expected) != len(got):
        lines.append(f"{len(got)} exchanges, {len(expected)} recorded")
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        extra = sorted((want.keys() | have.keys()) - set(_FIELDS))
        for key in (*_FIELDS, *extra):
            a, b = want.get(key), have.get(key)
            if a == b:
                continue
            lines.append(f"--- step {index} ({str(want.get('request', ''))[:120]}): {key} differs")
            if key == "request":
                lines.append("  (the case changed since it was recorded: record it again on the")
                lines.append("  reference code with `python -m tests.compat.record_wire`)")
            if isinstance(a, str) and isinstance(b, str):
                lines.extend(_line_diff(a, b))
            else:
                lines.append(f"  recorded: {a!r}")
                lines.append(f"  now:      {b!r}")
    return "\n".join(lines)


_LINES = re.compile(r"[^\n]*\n|[^\n]+\Z")


def _line_diff(a: str, b: str) -> list[str]:
    """A unified diff by lines (one SSE field per line); invisible differences shown escaped."""
    out = []
    old, new = _LINES.findall(a), _LINES.findall(b)
    for line in difflib.unified_diff(old, new, "recorded", "now", n=1, lineterm=""):
        out.append(
            _visible(line) if line[:1] in "+- " and not line.startswith(("---", "+++")) else line
        )
    removed = [line for line in old if line not in new]
    added = [line for line in new if line not in old]
    for was, now in zip(removed, added, strict=False):
        hint = _json_hint(was, now)
        if hint:
            out.append(f"  first JSON difference: {hint}")
            break
    return out


def _visible(line: str) -> str:
    """A diff line as is, or escaped when it has control characters, trailing blanks or no
    final newline (differences the eye would miss)."""
    sign, text = line[0], line[1:]
    shown = text.removesuffix("\n")
    if text == shown or shown != shown.rstrip() or any(ord(c) < 32 for c in shown):
        return sign + repr(text)
    return sign + shown


def _json_hint(was: str, now: str) -> str | None:
    """Where two JSON lines (or SSE `data:` lines) first differ, by path."""
    try:
        a = json.loads(was.removeprefix("data: "))
        b = json.loads(now.removeprefix("data: "))
    except ValueError:
        return None
    return _first_difference(a, b, "$")


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            at = next(
                i for i, (x, y) in enumerate(zip([*a, None], [*b, None], strict=False)) if x != y
            )
            return (
                f"{path}: keys differ from position {at}: {list(a)[at : at + 4]} -> "
                f"{list(b)[at : at + 4]}"
            )
        for key in a:
            found = _first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items -> {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if a != b or type(a) is not type(b):
        return f"{path}: {a!r} -> {b!r}"
    return None
