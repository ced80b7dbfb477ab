"""The request's function tools, validated once: the only names a completion may ever call.

Clients break on tool calls they did not declare (the Agents SDK raises `ModelBehaviorError`),
so the callable set is exactly the request's `tools`, never names merely seen in the history.
Tools that could never be called correctly are refused up front with a 400 naming the
parameter, as OpenAI does: a name that is empty, longer than 64 characters or declared twice,
and `parameters` that are not a JSON Schema describing an object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from proxy.api.chat_schema import ChatCompletionRequest
from proxy.core.bounded_cache import MiB, bounded_cache
from proxy.core.errors import InvalidRequest
from proxy.core.grammar import canonical_json, schema_depth

MAX_NAME_LENGTH = 64
# `parameters` nested deeper than this are refused before anything recurses over them:
# jsonschema's checker takes ~8 Python frames per level (about 120 levels exhaust the default
# recursion limit) and the grammar engine's compiler recurses on the C stack. Real tool
# schemas nest a handful of levels. schema_depth (re-exported here) measures it iteratively.
MAX_SCHEMA_DEPTH = 64
# _schema_problem's cache, in bytes of schema text and answer (grammar.py budgets the rest of
# the 64 MiB): schemas over _SCHEMA_ENTRY_BYTES are checked on every request, not kept.
_SCHEMA_CACHE_BYTES = 8 * MiB
_SCHEMA_ENTRY_BYTES = 256 << 10
ANY_OBJECT = canonical_json({"type": "object"})


@dataclass(frozen=True)
class FunctionTool:
    """One declared function: the client's exact name and what the grammar needs."""

    name: str
    description: str
    parameters: dict[str, Any] | None
    strict: bool
    # Where it sits in the request, for error messages: "tools[2]".
    param: str
    # Canonical JSON of the arguments' schema (an object of anything when none is given): the
    # grammar's input and the key of every cache below.
    schema_json: str
    # A Responses `namespace` tool's member: rendered in its own `namespace` block, called as
    # `namespace.name`. None: `namespace functions`.
    namespace: str | None = None
    namespace_description: str = ""
    # A Responses `custom` tool: its input is plain text, not JSON arguments, optionally
    # following a grammar: ("lark" | "regex", definition).
    freeform: bool = False
    grammar: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        """How the tool is known to the client: its name, or `namespace.name`."""
        return self.name if self.namespace is None else f"{self.namespace}.{self.name}"


def declared_tools(request: ChatCompletionRequest) -> list[FunctionTool]:
    """The request's function tools in order; 400 for any that cannot be honoured."""
    tools: list[FunctionTool] = []
    seen: dict[str, int] = {}
    for i, tool in enumerate(request.tools or []):
        param = f"tools[{i}]"
        if tool.type != "function" or tool.function is None:
            raise InvalidRequest(
                f"Unsupported tool type {tool.type!r}: only function tools are supported.",
                param=f"{param}.type",
            )
        function = tool.function
        if function.name in seen:
            _check_name(function.name, f"{param}.function.name")
            raise InvalidRequest(
                f"Duplicate tool name {function.name!r}: it is also tools[{seen[function.name]}]; "
                "each function must have a unique name.",
                param=f"{param}.function.name",
            )
        seen[function.name] = i
        tools.append(
            function_tool(
                function.name,
                function.description or "",
                function.parameters,
                strict=bool(function.strict),
                param=param,
                name_param=f"{param}.function.name",
                parameters_param=f"{param}.function.parameters",
            )
        )
    return tools


def function_tool(
    name: str,
    description: str,
    parameters: Any,
    *,
    strict: bool,
    param: str,
    name_param: str,
    parameters_param: str,
    namespace: str | None = None,
    namespace_description: str = "",
    freeform: bool = False,
    grammar: tuple[str, str] | None = None,
) -> FunctionTool:
    """One checked tool (400 naming `name_param` / `parameters_param`); both APIs use it."""
    _check_name(name, name_param)
    schema_json = _check_parameters(name, parameters, parameters_param)
    return FunctionTool(
        name=name,
        description=description,
        parameters=parameters,
        strict=strict,
        param=param,
        schema_json=schema_json,
        namespace=namespace,
        namespace_description=namespace_description,
        freeform=freeform,
        grammar=grammar,
    )


def _check_name(name: str, param: str) -> None:
    if not name.strip():
        raise InvalidRequest("A function name must not be empty.", param=param)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"The function name {name[:20]!r}... is {len(name)} characters long; "
            f"the maximum is {MAX_NAME_LENGTH}.",
            param=param,
        )


def _check_parameters(name: str, schema: Any, param: str) -> str:
    """`parameters` must be a valid JSON Schema of an object (or absent); returns its JSON."""
    if schema is None:
        return ANY_OBJECT
    if not isinstance(schema, dict):
        raise InvalidRequest(
            f"Invalid schema for function {name!r}: `parameters` must be a JSON Schema object, "
            f"got {type(schema).__name__}.",
            param=param,
        )
    if schema_depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        raise InvalidRequest(
            f"Invalid schema for function {name!r}: `parameters` is nested more than "
            f"{MAX_SCHEMA_DEPTH} levels deep.",
            param=param,
        )
    kind = schema.get("type", "object")
    if kind not in ("object", ["object"]):
        raise InvalidRequest(
            f"Invalid schema for function {name!r}: the arguments are a JSON object, so the "
            f'schema must have type "object", got {kind!r}.',
            param=param,
        )
    problem = _schema_problem(canonical_json(schema))
    if problem is not None:
        raise InvalidRequest(f"Invalid schema for function {name!r}{problem}", param=param)
    # `{}` or a bare `properties` map would let the grammar produce `null` or `[1]`: the
    # arguments are always an object, so the grammar is told so.
    return canonical_json({**schema, "type": "object"})


@bounded_cache(_SCHEMA_CACHE_BYTES, _SCHEMA_ENTRY_BYTES)
def _schema_problem(schema_json: str) -> str | None:
    """Why a schema is not valid JSON Schema (None if it is); cached: clients resend tools."""
    schema = json.loads(schema_json)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"{f' at `{where}`' if where else ''}: {exc.message}"
    return None
