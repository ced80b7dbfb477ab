"""Cheap refusals that run before any expensive work: body size, message count, bad text, length.

Why each exists (all found by sending hostile requests to the server):
- A body-size limit (413): without it a client can make the server buffer and JSON-parse any
  amount of data. Checked on the raw ASGI body, before FastAPI parses it.
- A message-count limit (400): 10,000 one-word messages were accepted and prefilled for 50 s.
- Lone surrogates (400): JSON allows `"\\ud800"`, Python keeps it in the string, and the
  tokenizer cannot encode it; the renderer's ValueError used to surface as a 500.
- A context pre-check (400 `context_length_exceeded`): a 3 MB message was tokenized in full
  (375k tokens) before being refused. Here the message texts are tokenized in pieces and the
  count stops as soon as it exceeds the context, so the refusal costs at most one context's
  worth of tokenization.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from harmony import HarmonyEncoding
from proxy.api.chat_schema import AssistantMessage, ChatCompletionRequest
from proxy.core.errors import InvalidRequest

# Texts are tokenized in pieces of this many characters by the pre-check.
_PIECE_CHARS = 16_384


def check_message_count(request: ChatCompletionRequest, max_messages: int | None) -> None:
    if max_messages is not None and len(request.messages) > max_messages:
        raise InvalidRequest(
            f"`messages` holds {len(request.messages)} messages; this server accepts at most "
            f"{max_messages}.",
            param="messages",
            code="too_many_messages",
        )


def check_text(request: BaseModel) -> None:
    """400 naming the first string that is not valid Unicode (a lone UTF-16 surrogate); for
    any request model (chat, Responses)."""
    found = _first_bad_string(request.model_dump(by_alias=True, exclude_none=True), "")
    if found is not None:
        raise InvalidRequest(
            f"`{found}` contains a lone UTF-16 surrogate (such as \\ud800), which is not valid "
            "Unicode text; send well-formed UTF-8.",
            param=found,
            code="invalid_unicode",
        )


def _first_bad_string(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or None
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _first_bad_string(key, child) is not None:
                return path or None
            found = _first_bad_string(item, child)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_bad_string(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def precheck_context(
    request: ChatCompletionRequest, encoding: HarmonyEncoding, max_model_len: int
) -> None:
    """400 `context_length_exceeded` when the texts alone surely exceed the context.

    Only a lower bound on the prompt is counted (message texts; splitting a text into pieces
    can add at most one token per cut, which is subtracted), so a request that fits is never
    refused here; the exact check follows the render.
    """
    if max_model_len <= 0:
        return
    texts = list(request_texts(request))
    if sum(len(t) for t in texts) <= max_model_len:
        return  # at most one token per character is not guaranteed, but the render is cheap
    count = 0
    for text in texts:
        for start in range(0, len(text), _PIECE_CHARS):
            piece = text[start : start + _PIECE_CHARS]
            count += len(encoding.encode(piece, disallowed_special=())) - (1 if start else 0)
            if count > max_model_len:
                raise InvalidRequest(
                    f"The messages are more than {max_model_len} tokens long, the model's "
                    "whole context; shorten them.",
                    param="messages",
                    code="context_length_exceeded",
                )


def request_texts(request: ChatCompletionRequest) -> Iterator[str]:
    """The message texts and call arguments: what dominates a prompt's size."""
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            yield content
        elif content:
            for part in content:
                if part.text:
                    yield part.text
        if isinstance(message, AssistantMessage):  # (earlier reasoning may be dropped)
            for call in message.tool_calls or []:
                yield call.function.arguments
