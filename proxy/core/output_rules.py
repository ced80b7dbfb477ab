"""tool_choice, response_format and strict tools, enforced by the engine's grammar.

Prompting alone does not make gpt-oss obey `tool_choice` or a JSON schema (vLLM #44216, #23120;
Ollama #11171, #11691), and small models call functions nobody declared (Ollama #11704, #11991;
vLLM #27385). So every request with tools or a response format carries a grammar
(`proxy/core/grammar.py`): free reasoning, an optional commentary preamble, then an ending:

| tool_choice            | response_format   | ending the grammar allows                          |
|------------------------|-------------------|----------------------------------------------------|
| none / auto, no tools  | text              | (no grammar)                                       |
| none, with tools       | text or json_*    | a final message (schema-valid for json_*)          |
| auto, with tools       | text or json_*    | a call to a declared tool with schema-valid        |
|                        |                   | arguments, or a final message (schema-valid)       |
| required               | any               | a call to one of the tools, args match its schema  |
| named                  | any               | a call to that tool, args match its schema         |
| none / auto, no tools  | json_*            | a final message that matches the schema            |

With required/named the completion *is* a tool call, so a response_format has nothing to shape in
it and applies to the final answer of a later request. `--no-enforce-auto-tool-calls` leaves
"auto" without a grammar unless a tool is `strict` or a response_format asks for one (then
non-strict tools may receive any JSON object); without a grammar the delta assembler checks each
call itself (undeclared or unparsable calls become text). Combinations that cannot be enforced
are a 400 naming the parameter, never ignored: required/named without tools, a named tool that
is not in `tools`, unknown response_format types, schemas the grammar engine cannot compile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proxy.core.errors import InvalidRequest
from proxy.core.grammar import (
    CallSpec,
    FinalSpec,
    GrammarError,
    canonical_json,
    check_schema,
    structural_tag,
)
from proxy.core.request import GenerationRequest, ParamNames
from proxy.core.tool_names import ToolNames
from proxy.core.tools import ANY_OBJECT, FunctionTool


@dataclass(frozen=True)
class OutputRules:
    """What the request asks of the output, for the engine (grammar) and the delta assembler."""

    # "none" | "auto" | "required" | "named"
    tool_choice: str
    named_tool: str | None = None
    # kwargs for the engine's structured-output params, e.g. {"structural_tag": "..."}.
    structured_outputs: dict[str, Any] | None = None
    # True when the grammar already guarantees that every call names a declared tool and
    # carries a JSON object, so calls can be streamed as generated; otherwise the assembler
    # holds each call until it is complete and checks it.
    calls_enforced: bool = False
    # `parallel_tool_calls: false`: at most one call per choice.
    max_tool_calls: int | None = None


def output_rules(
    request: GenerationRequest, names: ToolNames, *, enforce_auto: bool = True
) -> OutputRules:
    """Validate tool_choice against the tools and build the grammar that enforces it."""
    tools = request.tools
    choice, named = _tool_choice(request)
    schema = request.final_schema
    final = FinalSpec(canonical_json(schema) if schema is not None else None)
    max_calls = 1 if request.parallel_tool_calls is False else None

    if choice in ("required", "named"):
        wanted = [t for t in tools if named is None or t.key == named]
        calls, ending = _calls(wanted, names, relax=False), None
    elif choice == "none" or not tools:
        if schema is None and not (choice == "none" and tools):
            return OutputRules(choice, named, max_tool_calls=max_calls)
        calls, ending = (), final
    else:  # auto, with tools
        if not (enforce_auto or schema is not None or any(t.strict for t in tools)):
            return OutputRules(choice, named, max_tool_calls=max_calls)
        calls, ending = _calls(tools, names, relax=not enforce_auto), final

    try:
        tag = structural_tag(calls, ending, preamble=bool(calls))
    except GrammarError as exc:
        raise InvalidRequest(
            f"The JSON schema cannot be enforced by the grammar engine: {exc}",
            param=_culprit(tools, schema, request.names),
        ) from exc
    return OutputRules(
        choice,
        named,
        {"structural_tag": tag},
        calls_enforced=True,
        max_tool_calls=max_calls,
    )


def _calls(tools: Sequence[FunctionTool], names: ToolNames, *, relax: bool) -> tuple[CallSpec, ...]:
    """Grammar specs of the callable tools; `relax` lets non-strict tools take any object."""
    return tuple(
        CallSpec(
            names.address(tool.key),
            ANY_OBJECT if relax and not tool.strict else tool.schema_json,
            freeform=tool.freeform,
            grammar=tool.grammar,
            content_type="code" if tool.builtin == "python" else "",
        )
        for tool in tools
    )


def _culprit(
    tools: Sequence[FunctionTool], schema: dict[str, Any] | None, params: ParamNames
) -> str:
    """The parameter whose schema the grammar engine rejected (checked one by one)."""
    for tool in tools:
        try:
            check_schema(tool.schema_json)
        except GrammarError:
            return tool.parameters_param
    return params.output_format if schema is not None else "tools"


def _tool_choice(request: GenerationRequest) -> tuple[str, str | None]:
    tools = request.tools
    param = request.names.tool_choice
    if request.named_tool is not None:
        if all(t.key != request.named_tool for t in tools):
            raise InvalidRequest(
                f"tool_choice names the function {request.named_tool!r}, which is not in "
                "`tools`; it cannot be enforced.",
                param=param,
            )
        return "named", request.named_tool
    choice = request.tool_choice
    if choice is None:
        return ("auto" if tools else "none"), None
    if choice == "required" and not tools:
        raise InvalidRequest(
            'tool_choice "required" needs at least one tool in `tools`; it cannot be enforced.',
            param=param,
        )
    return choice, None
