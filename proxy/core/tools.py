"""The request's function tools, validated once: the only names a completion may ever call.

Clients break on tool calls they did not declare (the Agents SDK raises `ModelBehaviorError`),
so the callable set is exactly the request's `tools`, never names merely seen in the history.
Tools that could never be called correctly are refused up front with a 400 naming the
parameter, as OpenAI does: a name that is empty, longer than 64 characters or declared twice,
and `parameters` that are not a JSON Schema describing an object.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from proxy.core.bounded_cache import MiB, bounded_cache
from proxy.core.errors import InvalidRequest
from proxy.core.grammar import canonical_json

MAX_NAME_LENGTH = 64
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
    # Where its schema sits, for error messages: "tools[2].function.parameters".
    parameters_param: str
    # Canonical JSON of the arguments' schema (an object of anything when none is given): the
    # grammar's input and the key of every cache below. Empty until `validate_schemas` (run
    # after admission; on the event loop only when the check is cached) has checked it.
    schema_json: str = ""
    # A Responses `namespace` tool's member: rendered in its own `namespace` block, called as
    # `namespace.name`. None: `namespace functions`.
    namespace: str | None = None
    namespace_description: str = ""
    # A Responses `custom` tool: its input is plain text, not JSON arguments, optionally
    # following a grammar: ("lark" | "regex", definition).
    freeform: bool = False
    grammar: tuple[str, str] | None = None
    # One of gpt-oss's built-in tools ("python", "browser"): declared in the *system* message
    # the way the model was trained (Harmony's `with_python_tool()` / `with_browser_tool()`, not
    # this tool's description), addressed by its key itself (`python`, `browser.search`), and
    # run by the proxy (proxy/hosted/), never returned to the client.
    builtin: str | None = None

    @property
    def key(self) -> str:
        """How the tool is known to the client: its name, or `namespace.name`."""
        return self.name if self.namespace is None else f"{self.namespace}.{self.name}"


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
    """One tool, its cheap checks done (400 naming `name_param` / `parameters_param`): its name,
    and that `parameters` is an object schema. Validating the schema as JSON Schema costs time
    that grows with it, so it is left to `validate_schemas`, after the gate and admission."""
    check_name(name, name_param)
    _check_object_schema(name, parameters, parameters_param)
    return FunctionTool(
        name=name,
        description=description,
        parameters=parameters,
        strict=strict,
        param=param,
        parameters_param=parameters_param,
        namespace=namespace,
        namespace_description=namespace_description,
        freeform=freeform,
        grammar=grammar,
    )


def check_name(name: str, param: str) -> None:
    if not name.strip():
        raise InvalidRequest("A function name must not be empty.", param=param)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"The function name {name[:20]!r}... is {len(name)} characters long; "
            f"the maximum is {MAX_NAME_LENGTH}.",
            param=param,
        )


def _check_object_schema(name: str, schema: Any, param: str) -> None:
    """`parameters` must be absent or a JSON Schema object describing an object."""
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise InvalidRequest(
            f"Invalid schema for function {name!r}: `parameters` must be a JSON Schema object, "
            f"got {type(schema).__name__}.",
            param=param,
        )
    kind = schema.get("type", "object")
    if kind not in ("object", ["object"]):
        raise InvalidRequest(
            f"Invalid schema for function {name!r}: the arguments are a JSON object, so the "
            f'schema must have type "object", got {_shown(kind)}.',
            param=param,
        )


def _shown(value: Any) -> str:
    """A client value for a message: short, and never a repr that recurses through it."""
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    if isinstance(value, list) and all(isinstance(v, str) for v in value[:8]) and len(value) <= 8:
        return repr(value)
    return f"a {type(value).__name__}"


def validate_schemas(tools: tuple[FunctionTool, ...]) -> tuple[FunctionTool, ...]:
    """The tools with their schemas checked as JSON Schema and in canonical form (400 naming
    the first bad one). Cached per schema: clients resend the same tools every turn."""
    return tuple(_validated(tool) for tool in tools)


def _validated(tool: FunctionTool) -> FunctionTool:
    if tool.schema_json:
        return tool
    schema = tool.parameters
    if schema is None:
        return dataclasses.replace(tool, schema_json=ANY_OBJECT)
    problem = _schema_problem(canonical_json(schema))
    if problem is not None:
        raise InvalidRequest(
            f"Invalid schema for function {tool.name!r}{problem}", param=tool.parameters_param
        )
    # `{}` or a bare `properties` map would let the grammar produce `null` or `[1]`: the
    # arguments are always an object, so the grammar is told so.
    return dataclasses.replace(tool, schema_json=canonical_json({**schema, "type": "object"}))


@bounded_cache(_SCHEMA_CACHE_BYTES, _SCHEMA_ENTRY_BYTES)
def _schema_problem(schema_json: str) -> str | None:
    """Why a schema is not valid JSON Schema (None if it is); cached: clients resend tools.
    A large schema is checked in the isolated worker (proxy/core/isolated.py)."""
    from proxy.core.isolated import checked

    return checked("schema_problem", schema_json)


def schema_problem(schema_json: str) -> str | None:
    """`_schema_problem`'s work, in whichever process runs it."""
    schema = json.loads(schema_json)
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"{f' at `{where}`' if where else ''}: {exc.message}"
    return None
