"""`code_interpreter` -> gpt-oss's built-in `python` tool, run in the sandbox.

gpt-oss was trained with `python` declared in the system message (Harmony's
`with_python_tool()`), called as `to=python code` with plain code as the message (no JSON), and
answered by a `python` tool message with what the notebook printed. The Responses API's
`code_interpreter` tool is that tool: declared as the built-in (`FunctionTool.builtin`), each
call runs in the caller's container (proxy/hosted/sandbox.py) and is shown as a
`code_interpreter_call` item (`code`, `container_id`, `outputs: [{type: logs}]`) with the
`response.code_interpreter_call.*` and `response.code_interpreter_call_code.*` events.

`container` is a container id of the caller's (another owner's id is the same 400 as an
unknown one) or `{"type": "auto"}`: a fresh container, made on the response's first call and
used by every call of the response; a later request passes its id to keep the state. Off unless
the operator enables it (`--enable-code-interpreter`): without it the tool is left out of the
prompt, as before.
"""

from __future__ import annotations

from typing import Any

from proxy.core.errors import InvalidRequest
from proxy.core.tools import ANY_OBJECT, FunctionTool
from proxy.hosted.base import HostedCall, HostedContext, HostedResult, Item, ItemEvents
from proxy.hosted.sandbox import Sandbox, SandboxFull, shared_sandbox

PYTHON = "python"
# What the model reads when a cell printed nothing (a notebook shows nothing either; the model
# is told so rather than left with an empty message).
NO_OUTPUT = "[no output: the code ran and printed nothing; print() what you want to see]"


class PythonToolset:
    """One request's `code_interpreter` tool: the `python` built-in over one container."""

    item_type = "code_interpreter_call"
    id_prefix = "ci"
    events = ItemEvents(
        item="response.code_interpreter_call",
        arguments="response.code_interpreter_call_code",
        arguments_field="code",
        working="interpreting",
        failed_event=False,
    )

    def __init__(self, sandbox: Sandbox, owner: str, param: str, container_id: str | None) -> None:
        self._sandbox = sandbox
        self._owner = owner
        self._param = param
        self._container_id = container_id
        self._full = False

    def tools(self) -> tuple[FunctionTool, ...]:
        return (
            FunctionTool(
                name=PYTHON,
                description="",
                parameters=None,
                strict=False,
                param=self._param,
                parameters_param=self._param,
                schema_json=ANY_OBJECT,
                freeform=True,
                builtin=PYTHON,
            ),
        )

    def owns(self, key: str) -> bool:
        return key == PYTHON

    def leading_items(self) -> list[Item]:
        return []

    def needs_approval(self, key: str) -> bool:
        return False

    def start_item(self, call: HostedCall) -> Item:
        return {"container_id": self._container() or "", "outputs": None}

    async def run(self, call: HostedCall) -> HostedResult:
        container_id = self._container()
        if container_id is None:
            text = "[the code interpreter is at capacity: no container is free; try later]"
            return HostedResult(text, {"outputs": [_logs(text)]}, error="sandbox_full")
        execution = await self._sandbox.execute(self._owner, container_id, call.arguments)
        text = execution.output or NO_OUTPUT
        fields: Item = {"container_id": container_id, "outputs": [_logs(execution.output)]}
        return HostedResult(text, fields, error=execution.error)

    async def aclose(self) -> None:
        """Nothing per response: the container outlives it (until it expires)."""

    def _container(self) -> str | None:
        """The response's container, made on first use (None: every container is busy)."""
        if self._container_id is None and not self._full:
            try:
                self._container_id = self._sandbox.new_container(self._owner)
            except SandboxFull:
                self._full = True
        return self._container_id


def _logs(text: str) -> dict[str, str]:
    return {"type": "logs", "logs": text}


async def open_code_interpreter(
    tool: dict[str, Any], param: str, context: HostedContext
) -> PythonToolset | None:
    """The request's `code_interpreter` entry; None when the operator has not enabled it."""
    settings = context.config.code_interpreter
    if settings is None:
        return None
    sandbox = shared_sandbox(settings)
    container = tool.get("container", {"type": "auto"})
    if isinstance(container, str):
        if not sandbox.owns(context.owner, container):
            # The same answer for another owner's container as for an unknown one.
            raise InvalidRequest(
                f"Container with id {container[:80]!r} not found.", param=f"{param}.container"
            )
        return PythonToolset(sandbox, context.owner, param, container)
    if not isinstance(container, dict) or container.get("type") != "auto":
        raise InvalidRequest(
            '`container` must be a container id or {"type": "auto"}.', param=f"{param}.container"
        )
    if container.get("file_ids"):
        raise InvalidRequest(
            "`file_ids` are not supported: this server has no Files API (write files from code "
            "into /mnt/data instead).",
            param=f"{param}.container.file_ids",
        )
    return PythonToolset(sandbox, context.owner, param, None)
