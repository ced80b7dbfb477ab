"""Reading one Responses input item: messages, reasoning (sealed or clear), the built-ins' calls.

Each reader checks one item's fields (a 400 naming the item's own parameter, `input[3].content`)
and returns it normalised: ids given, content parts as a list, reasoning in clear. What the
items become together (assistant turns, tool results) is proxy/api/responses/inputs.py's.
"""

from __future__ import annotations

import secrets
from typing import Any

from proxy.core.errors import InvalidRequest
from proxy.core.sealing import BoundSealer, SealError

Item = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def read_builtin_call(item: Item, param: str) -> Item:
    """A `code_interpreter_call` or `web_search_call` item sent back (clients that keep the
    history themselves): its id, and the code and logs or the action."""
    kind = item["type"]
    out: Item = {
        "type": kind,
        "id": optional_string(item, "id", param) or new_id("ci"),
        "status": "completed",
    }
    if kind == "web_search_call":
        action = item.get("action")
        if action is None:
            action = {"type": "search"}
        action_type = action.get("type") if isinstance(action, dict) else None
        if not isinstance(action_type, str) or action_type not in BROWSER_FUNCTIONS:
            raise InvalidRequest(
                "`action` must be an object whose `type` is search, open_page or find_in_page.",
                param=f"{param}.action",
            )
        out["action"] = action
        for field in ("arguments", "output"):
            if isinstance(item.get(field), str):
                out[field] = item[field]
        return out
    out["code"] = optional_string(item, "code", param) or ""
    out["container_id"] = optional_string(item, "container_id", param) or ""
    outputs = item.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise InvalidRequest("`outputs` must be a list.", param=f"{param}.outputs")
    out["outputs"] = [
        {"type": "logs", "logs": o["logs"]}
        for o in outputs or []
        if isinstance(o, dict) and o.get("type") == "logs" and isinstance(o.get("logs"), str)
    ]
    return out


BROWSER_FUNCTIONS = {"search": "search", "open_page": "open", "find_in_page": "find"}


def logs_text(item: Item) -> str:
    return "".join(o["logs"] for o in item.get("outputs") or [] if o.get("type") == "logs")


def message_item(role: str, content: list[Item], item_id: str | None) -> Item:
    return {
        "type": "message",
        "id": item_id or new_id("msg"),
        "role": role,
        "content": content,
        "status": "completed",
    }


_PART_TYPES = {"input_text", "output_text", "text", "refusal"}


def read_message(item: Item, param: str) -> Item:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(
            f"Unsupported message role {role!r}: use user, assistant, system or developer.",
            param=f"{param}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        parts = [{"type": kind, "text": content}]
    elif isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            where = f"{param}.content[{j}]"
            if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRequest(
                    f"Unsupported content part type {kind!r}: this model reads text only "
                    "(input_text, output_text).",
                    param=f"{where}.type",
                )
            text_field = "refusal" if part["type"] == "refusal" else "text"
            text = part.get(text_field)
            if not isinstance(text, str):
                raise InvalidRequest(
                    f"`{text_field}` must be a string.", param=f"{where}.{text_field}"
                )
            kind = "output_text" if role == "assistant" else "input_text"
            parts.append({"type": kind, "text": text})
    else:
        raise InvalidRequest(
            "`content` must be a string or a list of parts.", param=f"{param}.content"
        )
    message = message_item(role, parts, optional_string(item, "id", param))
    phase = item.get("phase")
    if phase is not None:
        if role != "assistant" or phase not in ("commentary", "final_answer"):
            raise InvalidRequest(
                "`phase` is commentary or final_answer, on assistant messages only.",
                param=f"{param}.phase",
            )
        message["phase"] = phase
    return message


def read_reasoning(item: Item, param: str, sealer: BoundSealer | None) -> Item:
    text = ""
    sealed = item.get("encrypted_content")
    if sealed is not None:
        if not isinstance(sealed, str):
            raise InvalidRequest(
                "`encrypted_content` must be a string.", param=f"{param}.encrypted_content"
            )
        if sealer is None:
            raise InvalidRequest(
                "This server has no reasoning key, so it cannot open encrypted_content.",
                param=f"{param}.encrypted_content",
            )
        try:
            text = sealer.open(sealed)
        except SealError as exc:
            raise InvalidRequest(
                f"Invalid encrypted_content: {exc}.",
                param=f"{param}.encrypted_content",
                code="invalid_encrypted_content",
            ) from exc
    else:
        content = item.get("content")
        if content is not None and not isinstance(content, list):
            raise InvalidRequest("`content` must be a list.", param=f"{param}.content")
        for j, part in enumerate(content or []):
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                raise InvalidRequest(
                    "Reasoning content parts need a string `text`.",
                    param=f"{param}.content[{j}]",
                )
            text += part["text"]
        if text and sealer is not None and sealer.require_sealed:
            raise InvalidRequest(
                "This server accepts only reasoning it sealed: send the reasoning item's "
                '`encrypted_content` (ask for it with `include: ["reasoning.encrypted_content"]`)'
                ", or leave the reasoning out.",
                param=param,
                code="unsealed_reasoning",
            )
    return {
        "type": "reasoning",
        "id": optional_string(item, "id", param) or new_id("rs"),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}] if text else [],
    }


def output_text(output: Any, param: str) -> str:
    """A tool output: a string, or a list of text parts (images are not readable here)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
                raise InvalidRequest(
                    "Tool output parts must be input_text: this model reads text only.",
                    param=f"{param}[{j}]",
                )
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise InvalidRequest("`output` must be a string or a list of parts.", param=param)


def parts_text(item: Item) -> str:
    return "".join(part["text"] for part in item["content"])


def string_field(item: Item, field: str, param: str) -> str:
    value = item.get(field)
    if not isinstance(value, str):
        raise InvalidRequest(f"`{field}` must be a string.", param=f"{param}.{field}")
    return value


def optional_string(item: Item, field: str, param: str) -> str | None:
    value = item.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"`{field}` must be a string.", param=f"{param}.{field}")
    return value
