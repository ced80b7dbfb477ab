"""Client tool names <-> the identifiers the model sees in its `namespace functions { ... }`.

Harmony renders tools as TypeScript declarations (`type get_weather = ...`), so MCP-style names
such as `web-search`, `fs.read` or `git/commit` are not identifiers there, and models trained on
the format call them by mangled names. Like Ollama, we render each name as a valid identifier and
map whatever recipient the model writes back to the client's exact name (vLLM #51977, Ollama
#11991, serving-anchors §3 bug 18). Recipients are also cleaned of Harmony markers glued to them
(`get_weather<|constrain|>json`, `manage_cart<|channel|>commentary`: bug 16).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


def _identifier(name: str) -> str:
    ident = _NOT_IDENT.sub("_", name) or "_"
    return f"_{ident}" if ident[0].isdigit() else ident


class ToolNames:
    """The bidirectional name map for one request's tools (and its history's tool calls)."""

    def __init__(self, client_names: Iterable[str] = ()) -> None:
        self._to_model: dict[str, str] = {}
        self._to_client: dict[str, str] = {}
        for name in client_names:
            self.add(name)

    def add(self, client_name: str) -> str:
        """Register `client_name` (idempotent) and return its model-side identifier."""
        if client_name in self._to_model:
            return self._to_model[client_name]
        ident = base = _identifier(client_name)
        suffix = 2
        while ident in self._to_client:
            ident, suffix = f"{base}_{suffix}", suffix + 1
        self._to_model[client_name] = ident
        self._to_client[ident] = client_name
        return ident

    def to_model(self, client_name: str) -> str:
        return self.add(client_name)

    def to_client(self, model_name: str) -> str:
        """Map a name the model wrote back; an exact client name or unknown name passes through."""
        if model_name in self._to_client:
            return self._to_client[model_name]
        return model_name

    def knows(self, name: str) -> bool:
        """True if `name` is a client name or a model-side identifier of one."""
        return name in self._to_model or name in self._to_client

    @property
    def client_names(self) -> list[str]:
        return list(self._to_model)


def clean_recipient(recipient: str | None) -> str | None:
    """Strip Harmony markers and constrain suffixes glued to a recipient; None if nothing left."""
    if recipient is None:
        return None
    cut = recipient.find("<|")
    if cut != -1:
        recipient = recipient[:cut]
    recipient = recipient.strip().split()[0] if recipient.strip() else ""
    return recipient or None


def function_name(recipient: str | None, names: ToolNames | None = None) -> str | None:
    """The called function's model-side name if `recipient` addresses a tool, else None.

    `functions.x` is a tool call on any channel. A bare recipient (`get_weather`, seen from
    gpt-oss-20b: vLLM PR #42454) is one only when it names a known tool, so header garbage such
    as `<|channel|>final junk<|message|>` stays text instead of becoming a fake call.
    """
    recipient = clean_recipient(recipient)
    if recipient is None or recipient == "assistant":
        return None
    if recipient.startswith("functions."):
        return recipient[len("functions.") :] or None
    if names is not None and names.knows(recipient):
        return recipient
    return None
