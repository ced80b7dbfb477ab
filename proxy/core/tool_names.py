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
from typing import Literal

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


def _identifier(name: str) -> str:
    ident = _NOT_IDENT.sub("_", name) or "_"
    return f"_{ident}" if ident[0].isdigit() else ident


class ToolNames:
    """The bidirectional name map for one request: its declared tools, then history-only names.

    Only declared tools are callable; names that appear only in the history's tool calls get an
    identifier for rendering that history, but a new call to them is not a tool call.

    Tools live in `namespace functions` unless declared in another namespace (the Responses
    API's `namespace` tools, rendered by Harmony as their own `namespace x { ... }` blocks). A
    tool is known by its client *key*: its name, or `namespace.name` for a namespaced one.
    `freeform` holds the keys of tools whose input is plain text (custom tools), not JSON.
    """

    def __init__(self, declared: Iterable[str] = ()) -> None:
        self._to_model: dict[str, str] = {}
        self._to_client: dict[str, str] = {}
        # base identifier -> the suffix its next collision starts probing from: every
        # `base_2` .. `base_{n-1}` below it is taken (identifiers are never released), so each
        # new name costs O(1) amortised instead of a probe from 2 (20,000 colliding history
        # names took 33 s of CPU).
        self._next_suffix: dict[str, int] = {}
        self._declared: set[str] = set()
        # key -> "ns.ident" and back, for tools outside `functions`.
        self._namespaced: dict[str, str] = {}
        self._address_to_key: dict[str, str] = {}
        self.freeform: set[str] = set()
        for name in declared:
            self._declared.add(self.to_model(name))

    def declare_namespaced(self, key: str, namespace: str, name: str) -> str:
        """Declare `name` inside `namespace` under the client key `key`; its model address."""
        address = f"{_identifier(namespace)}.{_identifier(name)}"
        self._namespaced[key] = address
        self._address_to_key[address] = key
        return address

    def declare_address(self, key: str, address: str) -> str:
        """Declare a tool the model addresses exactly as `address` (gpt-oss's built-in `python`,
        `browser.search`), outside every namespace block."""
        self._namespaced[key] = address
        self._address_to_key[address] = key
        return address

    def address(self, key: str) -> str:
        """The recipient the model writes for this tool: `functions.x` or `namespace.x`."""
        namespaced = self._namespaced.get(key)
        return namespaced if namespaced is not None else f"functions.{self.to_model(key)}"

    def namespaced_key(self, address: str) -> str | None:
        """The client key of a declared namespaced tool addressed as `namespace.x`."""
        return self._address_to_key.get(address)

    def to_model(self, client_name: str) -> str:
        """The model-side identifier of `client_name`, registering it on first use."""
        if client_name in self._to_model:
            return self._to_model[client_name]
        ident = base = _identifier(client_name)
        if ident in self._to_client:
            # The first free `base_n`, n >= 2, as a probe from 2 would find it; a client name
            # that is literally `base_3` is skipped like any other taken identifier.
            suffix = self._next_suffix.get(base, 2)
            ident = f"{base}_{suffix}"
            while ident in self._to_client:
                suffix += 1
                ident = f"{base}_{suffix}"
            self._next_suffix[base] = suffix + 1
        self._to_model[client_name] = ident
        self._to_client[ident] = client_name
        return ident

    def declared_client_name(self, name: str) -> str | None:
        """The client's exact name if `name` (model identifier or client name) is declared."""
        if name in self._declared:
            return self._to_client[name]
        ident = self._to_model.get(name)
        if ident is not None and ident in self._declared:
            return name
        return None


def clean_recipient(recipient: str | None) -> str | None:
    """Strip Harmony markers and constrain suffixes glued to a recipient; None if nothing left."""
    if recipient is None:
        return None
    cut = recipient.find("<|")
    if cut != -1:
        recipient = recipient[:cut]
    recipient = recipient.strip().split()[0] if recipient.strip() else ""
    return recipient or None


ToolAddress = tuple[Literal["tool", "undeclared"], str]


def classify_recipient(
    recipient: str | None, names: ToolNames, channel: str | None = None
) -> ToolAddress | None:
    """What a message's recipient addresses: a declared tool, an undeclared one, or nothing.

    `("tool", client_name)` for a declared function, written `functions.x` or bare (`x`, seen
    from gpt-oss-20b: vLLM PR #42454). `("undeclared", address)` for any other tool address:
    `functions.calculator` nobody declared, the built-in `python`, `browser.search`, a
    namespaced `ns.fn`; the caller turns those into text, never into a `tool_calls` entry.
    None when the message addresses no tool: no recipient, `assistant`, or a stray word in a
    garbled header (`<|channel|>analysis junk<|message|>`), which keeps its channel's meaning.
    On the final channel a bare word is never a call: `<|channel|>final json<|message|>` is an
    answer in JSON, even if a tool happens to be named `json`.
    """
    address = clean_recipient(recipient)
    if address is None or address == "assistant":
        return None
    namespaced = names.namespaced_key(address)
    if namespaced is not None:
        return ("tool", namespaced)
    if address.startswith("functions."):
        client = names.declared_client_name(address[len("functions.") :])
        return ("tool", client) if client is not None else ("undeclared", address)
    client = names.declared_client_name(address) if channel != "final" else None
    if client is not None:
        return ("tool", client)
    if "." in address or address == "python":
        return ("undeclared", address)
    return None
