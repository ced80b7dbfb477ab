"""One gate: every limit that bounds a request's cost, checked before any work is done for it.

`check_request` runs on the parsed `GenerationRequest`, before schema validation, rendering,
grammar building or admission, and costs O(size of the request) with small constants (the
tool schemas are measured in C by orjson, their depth by one iterative walk of what is left),
so a refusal costs well under 50 ms of CPU whatever the body. Each limit is a field of `Limits`
(a flag of the server) and each refusal is a 400 naming the client's parameter and the limit.

Why each exists (all found by sending hostile requests to the server, issue 17):
- messages: 10,000 one-word messages were accepted and prefilled for 50 s;
- tools, tool-schema bytes and depth: one 2.5 MB schema blocked the event loop for 2.6 s, and
  a schema nested ~100 deep made jsonschema raise RecursionError (a 500);
- custom-tool grammars: converted and compiled per request, their cost grows with their size;
- stop strings: matched against the answer on every token (4 x 1 MB took 30 s of loop time);
- past tool calls: 20,000 calls with colliding names cost 33 s of CPU before a 400;
- `metadata`, `model`, `user`: echoed and stored; OpenAI's own limits hold.
`check_context` (the prompt surely longer than the context: 400 `context_length_exceeded`)
tokenizes texts in pieces and stops as soon as the count exceeds the context, so it costs at
most one context's worth of tokenization, however large the request.
`check_unicode`: lone surrogates (`"\\ud800"` is valid JSON) cannot be encoded; found by a
regular expression over the raw body (C speed), walked for only when one is there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from harmony import HarmonyEncoding
from proxy.core.errors import InvalidRequest
from proxy.core.grammar import schema_depth
from proxy.core.request import GenerationRequest

# Texts are tokenized in pieces of this many characters by the context pre-check.
_PIECE_CHARS = 16_384
# A JSON escape of a UTF-16 surrogate: the only way a lone one gets into a parsed string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class Limits:
    """The server's cost limits (each a `--max-*` flag); None disables one."""

    max_messages: int | None = 2048
    max_tools: int | None = 128
    # Bytes of all tool declarations together (names, descriptions, schemas as JSON).
    max_tool_bytes: int | None = 1024 * 1024
    # Nesting of any one JSON schema (tool parameters, the answer's schema).
    max_schema_depth: int | None = 64
    # Bytes of all custom-tool grammars (Lark or regex definitions) together.
    max_grammar_bytes: int | None = 256 * 1024
    max_stop_strings: int = 4
    max_stop_length: int | None = 1024
    max_past_tool_calls: int | None = 4096
    max_n: int = 16
    # OpenAI's limits on `metadata`, and on the lengths of `model` and `user`.
    max_metadata_pairs: int = 16
    max_metadata_key_length: int = 64
    max_metadata_value_length: int = 512
    max_model_length: int = 256
    max_user_length: int = 256


def _refuse(message: str, param: str, code: str = "limit_exceeded") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def count_limit(count: int, limit: int | None, what: str, param: str) -> None:
    """400 when a raw body holds more `what` than `limit` (the surfaces count before they
    build models; proxy/server/json_body.py)."""
    if limit is not None and count > limit:
        raise _refuse(
            f"`{param}` holds {count} {what}; this server accepts at most {limit}.",
            param,
            code="too_many_messages" if what == "messages" else "limit_exceeded",
        )


@dataclass(frozen=True, slots=True)
class Measured:
    """What the gate measured of an admitted request, for the planner to weigh without
    measuring it again (planning.plans_quickly)."""

    # The size of the tool declarations as `max_tool_bytes` limits it: the characters of the
    # names and descriptions plus the bytes of the schemas as JSON.
    tool_bytes: int = 0


def check_request(request: GenerationRequest, limits: Limits) -> Measured:
    """400 for the first limit `request` exceeds; nothing else is done to it here."""
    names = request.names
    if len(request.model) > limits.max_model_length:
        raise _refuse(
            f"`model` is {len(request.model)} characters long; the limit is "
            f"{limits.max_model_length}.",
            "model",
        )
    if request.user is not None and len(request.user) > limits.max_user_length:
        raise _refuse(
            f"`user` is {len(request.user)} characters long; the limit is "
            f"{limits.max_user_length}.",
            "user",
        )
    check_metadata(request.metadata, limits)
    if limits.max_messages is not None and len(request.parts) > limits.max_messages:
        raise _refuse(
            f"`{names.messages}` holds {len(request.parts)} messages; this server accepts at "
            f"most {limits.max_messages}.",
            names.messages,
            code="too_many_messages",
        )
    calls = request.past_calls()
    if limits.max_past_tool_calls is not None and calls > limits.max_past_tool_calls:
        raise _refuse(
            f"`{names.messages}` holds {calls} past tool calls; this server accepts at most "
            f"{limits.max_past_tool_calls}.",
            names.messages,
        )
    if request.sampling.n > limits.max_n:
        raise _refuse(f"`n` is {request.sampling.n}; the limit is {limits.max_n}.", "n")
    _check_stop(request, limits)
    tool_bytes = _check_tools(request, limits)
    if request.final_schema is not None:
        _check_depth(request.final_schema, names.output_format, limits.max_schema_depth)
    return Measured(tool_bytes=tool_bytes)


def check_metadata(metadata: dict[str, Any] | None, limits: Limits) -> None:
    """400 for `metadata` over OpenAI's limits (responses, and conversations' own)."""
    if not metadata:
        return
    if len(metadata) > limits.max_metadata_pairs:
        raise _refuse(
            f"`metadata` has {len(metadata)} pairs; the limit is {limits.max_metadata_pairs}.",
            "metadata",
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > limits.max_metadata_key_length:
            raise _refuse(
                f"A `metadata` key is longer than {limits.max_metadata_key_length} characters.",
                "metadata",
            )
        if not isinstance(value, str):
            raise _refuse(f"`metadata.{key}` must be a string.", f"metadata.{key}")
        if len(value) > limits.max_metadata_value_length:
            raise _refuse(
                f"`metadata.{key}` is {len(value)} characters long; the limit is "
                f"{limits.max_metadata_value_length}.",
                f"metadata.{key}",
            )


def check_stop_count(count: int, limits: Limits, param: str) -> None:
    """400 for more stop strings than the limit (also counted on raw bodies, before models)."""
    if count > limits.max_stop_strings:
        raise _refuse(
            f"`{param}` takes at most {limits.max_stop_strings} strings, got {count}.",
            param,
            code=None,  # (OpenAI's own limit; the message predates the gate)
        )


def _check_stop(request: GenerationRequest, limits: Limits) -> None:
    param = request.names.stop
    check_stop_count(len(request.stop), limits, param)
    longest = limits.max_stop_length
    for i, stop in enumerate(request.stop):
        if longest is not None and len(stop) > longest:
            raise _refuse(
                f"`{param}[{i}]` is {len(stop)} characters long; the limit is {longest}.",
                f"{param}[{i}]",
            )


def _check_tools(request: GenerationRequest, limits: Limits) -> int:
    """400 for too many, too large or too deep tools; else their declarations' size."""
    tools = request.tools
    if limits.max_tools is not None and len(tools) > limits.max_tools:
        raise _refuse(
            f"`tools` holds {len(tools)} tools; this server accepts at most {limits.max_tools}.",
            "tools",
        )
    # Sizes first, all in C (orjson), then the depth walk, in Python, of what is left: at most
    # `max_tool_bytes` of schemas (a 2.5 MB schema walked first cost 30 ms before its 400).
    size = 0
    for tool in tools:
        try:
            schema_bytes = len(orjson.dumps(tool.parameters)) if tool.parameters else 0
        except orjson.JSONEncodeError:
            # orjson refuses nesting past 255 levels: too deep for any limit worth setting.
            raise _refuse(
                f"The schema is nested more than {limits.max_schema_depth or 255} levels deep.",
                tool.parameters_param,
            ) from None
        except TypeError as exc:
            raise _refuse(f"The schema cannot be read: {exc}.", tool.parameters_param) from None
        size += len(tool.name) + len(tool.description) + schema_bytes
        if limits.max_tool_bytes is not None and size > limits.max_tool_bytes:
            raise _refuse(
                f"The tool declarations are larger than this server's limit of "
                f"{limits.max_tool_bytes} bytes (names, descriptions and schemas together).",
                "tools",
            )
    grammars = 0
    for tool in tools:
        if tool.parameters is not None:
            _check_depth(tool.parameters, tool.parameters_param, limits.max_schema_depth)
        if tool.grammar is not None:
            grammars += len(tool.grammar[1])
            if limits.max_grammar_bytes is not None and grammars > limits.max_grammar_bytes:
                raise _refuse(
                    f"The custom tools' grammars are larger than this server's limit of "
                    f"{limits.max_grammar_bytes} bytes together.",
                    f"{tool.param}.format",
                )
    return size


def _check_depth(value: Any, param: str, limit: int | None) -> None:
    if limit is not None and schema_depth(value, limit) > limit:
        raise _refuse(f"The schema is nested more than {limit} levels deep.", param)


def check_unicode(raw_body: bytes, parsed: Callable[[], Any]) -> None:
    """400 naming the first string that is not valid Unicode (a lone UTF-16 surrogate);
    `parsed()` gives the request as plain data, built only when the body has an escape."""
    if not _SURROGATE_ESCAPE.search(raw_body):
        return  # no surrogate escape at all: nothing to walk
    found = _first_bad_string(parsed())
    if found is not None:
        raise InvalidRequest(
            f"`{found}` contains a lone UTF-16 surrogate (such as \\ud800), which is not valid "
            "Unicode text; send well-formed UTF-8.",
            param=found,
            code="invalid_unicode",
        )


def _first_bad_string(value: Any) -> str | None:
    """The path of the first string that cannot be encoded, depth first, without recursion."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return path or None
        elif isinstance(node, dict):
            children = []
            for key, item in node.items():
                child = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not _encodes(key):
                    return path or None
                children.append((item, child))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((node[i], f"{path}[{i}]") for i in range(len(node) - 1, -1, -1))
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_context(
    request: GenerationRequest, encoding: HarmonyEncoding, max_model_len: int
) -> None:
    """400 `context_length_exceeded` when the texts and tool declarations alone surely exceed
    the context.

    Only a lower bound on the prompt is counted (texts, tool names and descriptions; cutting a
    text into pieces can add at most one token per cut, which is subtracted), so a request that
    fits is never refused here; the exact check follows the render.
    """
    if max_model_len <= 0:
        return
    texts = request.texts()
    for tool in request.tools:
        texts.append(tool.name)
        texts.append(tool.description)
    if sum(len(t) for t in texts) <= max_model_len:
        return  # at most one token per character is not guaranteed, but the render is cheap
    if tokens_at_least(texts, encoding, max_model_len) > max_model_len:
        raise context_exceeded(request, max_model_len)


def context_exceeded(request: GenerationRequest, max_model_len: int) -> InvalidRequest:
    """The 400 for texts that surely do not fit the context."""
    return InvalidRequest(
        f"The messages are more than {max_model_len} tokens long, the model's whole context; "
        "shorten them.",
        param=request.names.messages,
        code="context_length_exceeded",
    )


def tokens_at_least(texts: Iterable[str], encoding: HarmonyEncoding, limit: int) -> int:
    """A lower bound on the tokens of `texts`, counted only until it passes `limit` (so it
    costs about `limit` tokens of tokenizing, whatever the texts' size): each text is cut into
    pieces, and a cut can add at most one token, which is subtracted."""
    count = 0
    for text in texts:
        for start in range(0, len(text), _PIECE_CHARS):
            piece = text[start : start + _PIECE_CHARS]
            count += len(encoding.encode(piece, disallowed_special=())) - (1 if start else 0)
            if count > limit:
                return count
    return count
