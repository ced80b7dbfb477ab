"""tool_choice and response_format, enforced by the engine's grammar (xgrammar structural tags).

Prompting alone does not make gpt-oss obey `tool_choice: "required"` or a JSON schema (vLLM
#44216, #23120; Ollama #11171, #11691). Like vLLM >= 0.27 (`vllm/parser/harmony.py`) we build a
structural tag that starts right after the prompt's `<|start|>assistant`: free reasoning (an
optional analysis message), an optional commentary preamble where a tool call may follow, then a
constrained ending:

| tool_choice            | response_format   | ending the grammar allows                          |
|------------------------|-------------------|----------------------------------------------------|
| none / auto, no tools  | text              | (no grammar)                                       |
| none, with tools       | text              | a final message (tool calls are impossible)        |
| auto, with tools       | text              | (no grammar: the model may answer or call)         |
| required               | any               | a call to one of the tools, args match its schema  |
| named                  | any               | a call to that tool, args match its schema         |
| none / auto, no tools  | json_*            | a final message that matches the schema            |
| none, with tools       | json_*            | a final message that matches the schema            |
| auto, with tools       | json_*            | a schema-valid call, or a schema-valid final       |

With required/named the completion *is* a tool call, so a response_format has nothing to shape in
it and applies to the final answer of a later request. Combinations that cannot be enforced are
answered with a 400 naming the parameter, never ignored: required/named without tools, a named
tool that is not in `tools`, unknown response_format types, schemas xgrammar cannot compile.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from proxy.api_models import ChatCompletionRequest, NamedToolChoice
from proxy.errors import InvalidRequest
from proxy.tool_names import ToolNames

# The stop tokens (<|return|>, <|call|>) end a message too; xgrammar refuses stop tokens inside
# a constrained span, so "" lets the grammar finish and the engine's stop ids take over.
_END = ["<|end|>", ""]
_JSON_CONSTRAINS = [" json", " <|constrain|>json"]
_FINAL_BEGIN = "<|channel|>final{constrain}<|message|>"
_CALL_CHANNELS = ["<|channel|>commentary", "<|channel|>analysis", "<|channel|>final"]
# Harmony's control tokens. xgrammar sees special tokens as their text, so without these
# exclusions a JSON string or a reasoning span could swallow `<|end|><|start|>...` and the
# grammar's idea of the message would drift from the Harmony parser's (seen on the demo model).
_MARKERS = [
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
    "<|endoftext|>",
    "<|reserved",
]
# Free text ends at its tag's `<|end|>`; every other marker is forbidden inside it.
_TEXT_EXCLUDES = [m for m in _MARKERS if m != "<|end|>"]
# JSON may be pretty-printed, but a small model can otherwise loop on whitespace forever.
_MAX_JSON_WHITESPACE = 64
_CALL_BEGINS = [
    " to=functions.{name}{channel}{constrain}<|message|>",
    "{channel} to=functions.{name}{constrain}<|message|>",
]


@dataclass(frozen=True)
class OutputRules:
    """What the request asks of the output, for the engine (grammar) and the parser."""

    # "none" | "auto" | "required" | "named"
    tool_choice: str
    named_tool: str | None = None
    # kwargs for the engine's structured-output params, e.g. {"structural_tag": "..."}.
    structured_outputs: dict[str, Any] | None = None


def output_rules(request: ChatCompletionRequest, names: ToolNames) -> OutputRules:
    """Validate tool_choice / response_format and build the grammar that enforces them."""
    tools = {t.function.name: t.function for t in request.tools or [] if t.function is not None}
    choice, named = _tool_choice(request, tools)
    final_schema = _final_schema(request)

    if choice in ("required", "named"):
        wanted = [named] if named else list(tools)
        content = _or([_call_tag(names.to_model(n), tools[n]) for n in wanted])
        tag = _assemble(content, allow_commentary=True)
    elif final_schema is None:
        if choice == "none" and tools:
            tag = _assemble(_or(_final_tags(None)), allow_commentary=False)
        else:
            return OutputRules(choice, named)
    elif choice == "auto" and tools:
        calls = [_call_tag(names.to_model(n), f) for n, f in tools.items()]
        tag = _assemble(_or(calls + _final_tags(final_schema)), allow_commentary=True)
    else:
        tag = _assemble(_or(_final_tags(final_schema)), allow_commentary=False)

    tag_json = json.dumps(tag.model_dump())
    _check_compiles(tag_json, "tools" if final_schema is None else "response_format")
    return OutputRules(choice, named, {"structural_tag": tag_json})


def _tool_choice(request: ChatCompletionRequest, tools: dict[str, Any]) -> tuple[str, str | None]:
    choice = request.tool_choice
    if choice is None:
        return ("auto" if tools else "none"), None
    if isinstance(choice, NamedToolChoice):
        if choice.type != "function" or choice.function is None:
            raise InvalidRequest(
                f"Unsupported tool_choice type {choice.type!r}: use none, auto, required or "
                '{"type": "function", "function": {"name": ...}}.',
                param="tool_choice",
            )
        if choice.function.name not in tools:
            raise InvalidRequest(
                f"tool_choice names the function {choice.function.name!r}, which is not in "
                "`tools`; it cannot be enforced.",
                param="tool_choice",
            )
        return "named", choice.function.name
    if choice == "required" and not tools:
        raise InvalidRequest(
            'tool_choice "required" needs at least one tool in `tools`; it cannot be enforced.',
            param="tool_choice",
        )
    return choice, None


def _final_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.type == "json_schema":
        if fmt.json_schema is None or fmt.json_schema.json_schema is None:
            raise InvalidRequest(
                "response_format json_schema needs `json_schema.schema`.",
                param="response_format.json_schema.schema",
            )
        return fmt.json_schema.json_schema
    raise InvalidRequest(
        f"Unsupported response_format type {fmt.type!r}: use text, json_object or json_schema.",
        param="response_format.type",
    )


def _xgr() -> Any:
    try:
        from xgrammar import structural_tag
    except ImportError as exc:  # pragma: no cover - xgrammar ships with vLLM
        raise InvalidRequest(
            "tool_choice/response_format need grammar-constrained decoding (xgrammar), which "
            "is not installed on this server; they cannot be enforced.",
            param="response_format",
        ) from exc
    return structural_tag


def _call_tag(model_name: str, function: Any) -> list[Any]:
    st = _xgr()
    schema = function.parameters if function.parameters is not None else {"type": "object"}
    return [
        st.TagFormat(
            begin=pattern.format(name=model_name, channel=channel, constrain=constrain),
            content=_json(st, schema),
            end=_END,
        )
        for pattern in _CALL_BEGINS
        for constrain in _JSON_CONSTRAINS
        for channel in _CALL_CHANNELS
    ]


def _final_tags(schema: dict[str, Any] | None) -> list[Any]:
    st = _xgr()
    if schema is None:
        begin = _FINAL_BEGIN.format(constrain="")
        return [st.TagFormat(begin=begin, content=_text(st), end=_END)]
    return [
        st.TagFormat(
            begin=_FINAL_BEGIN.format(constrain=constrain),
            content=_json(st, schema),
            end=_END,
        )
        for constrain in [*_JSON_CONSTRAINS, ""]
    ]


def _or(groups: list[Any]) -> Any:
    st = _xgr()
    flat = [tag for group in groups for tag in (group if isinstance(group, list) else [group])]
    return st.OrFormat(elements=flat)


def _assemble(content: Any, *, allow_commentary: bool) -> Any:
    """Optional analysis, optional commentary preamble, then `content`."""
    st = _xgr()
    elements = [_optional_message(st, "analysis")]
    if allow_commentary:
        elements.append(_optional_message(st, "commentary"))
    elements.append(content)
    return st.StructuralTag(format=st.SequenceFormat(elements=elements))


def _optional_message(st: Any, channel: str) -> Any:
    return st.OptionalFormat(
        content=st.SequenceFormat(
            elements=[
                st.TagFormat(
                    begin=f"<|channel|>{channel}<|message|>", content=_text(st), end="<|end|>"
                ),
                st.ConstStringFormat(value="<|start|>assistant"),
            ]
        )
    )


def _text(st: Any) -> Any:
    return st.AnyTextFormat(excludes=_TEXT_EXCLUDES)


def _json(st: Any, schema: dict[str, Any]) -> Any:
    return st.JSONSchemaFormat(
        json_schema=schema, excludes=_MARKERS, max_whitespace_cnt=_MAX_JSON_WHITESPACE
    )


def _check_compiles(tag_json: str, param: str) -> None:
    """Compile the grammar now so a bad schema is a 400 here, not an engine error mid-request."""
    import xgrammar

    try:
        xgrammar.Grammar.from_structural_tag(tag_json)
    except Exception as exc:
        # xgrammar prefixes "[time] file.cc:line: "; the client only needs the reason.
        reason = re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", str(exc).strip().splitlines()[0])
        raise InvalidRequest(
            f"The JSON schema cannot be enforced by the grammar engine: {reason}", param=param
        ) from exc
