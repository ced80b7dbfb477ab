"""A request's `{"type": "mcp", ...}` tool entry, read and checked before anything is called.

OpenAI's fields: `server_label` (the namespace the model calls the tools by), `server_url`,
`headers` (sent to the server, e.g. `Authorization`; never stored or echoed: see
`redacted_tools`), `authorization` (an OAuth token, sent as `Authorization: Bearer`),
`allowed_tools` (a list of names, or `{"tool_names": [...], "read_only": true}`) and
`require_approval` (`"always"` (OpenAI's default), `"never"`, or `{"always": {"tool_names"},
"never": {"tool_names"}}`; a tool named in neither filter needs approval). `connector_id` (OpenAI's
hosted connectors) is refused: there is nothing here to connect to.

The server URL must fall under one of the operator's `--mcp-allow` prefixes (same scheme, host
and port, and the prefix's path at a segment boundary; no credentials, no `.`/`..` segments):
without any, MCP tools are refused, so a client cannot make the proxy reach into the network it
sits in (SSRF). Every refusal is a 400 naming the field (`tools[i].server_url`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from proxy.core.errors import InvalidRequest

_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Bounds on what a client may attach to one entry.
MAX_HEADERS = 32
MAX_HEADER_BYTES = 8192
# The fields `redacted_tools` replaces in the stored and echoed `tools`.
SECRET_FIELDS = ("headers", "authorization")


@dataclass(frozen=True)
class McpServerAddress:
    """Where a server is and what to send it (headers may hold credentials: never logged)."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    # The operator's `--mcp-allow` prefixes every request of a session must stay under (a
    # redirect or an SSE server's endpoint elsewhere is refused); empty: the operator's own
    # server (a search backend), not checked.
    allow: tuple[str, ...] = ()

    @property
    def sse(self) -> bool:
        return urlsplit(self.url).path.rstrip("/").endswith("/sse")


@dataclass(frozen=True)
class McpEntry:
    """One `mcp` tool entry, checked."""

    param: str
    label: str
    address: McpServerAddress
    allowed: frozenset[str] | None  # None: every tool the server lists
    read_only_only: bool
    approval_always: frozenset[str] | None  # None: no `always` filter
    approval_never: frozenset[str] | None
    approval_default: bool  # what a tool named in neither filter needs

    def needs_approval(self, tool: str) -> bool:
        if self.approval_never is not None and tool in self.approval_never:
            return False
        if self.approval_always is not None and tool in self.approval_always:
            return True
        return self.approval_default


def read_entry(tool: dict[str, Any], param: str, allow: tuple[str, ...]) -> McpEntry:
    label = tool.get("server_label")
    if not isinstance(label, str) or not _LABEL.match(label):
        raise InvalidRequest(
            "`server_label` must be 1-64 letters, digits, `_` or `-`, starting with a letter.",
            param=f"{param}.server_label",
        )
    url = tool.get("server_url")
    if not isinstance(url, str):
        what = "connector_id is not supported here" if tool.get("connector_id") else "missing"
        raise InvalidRequest(
            f"An mcp tool needs a `server_url` ({what}).", param=f"{param}.server_url"
        )
    if not allow:
        raise InvalidRequest(
            "MCP tools are not enabled on this server (the operator allows MCP servers with "
            "--mcp-allow URL-PREFIX).",
            param=f"{param}.server_url",
        )
    if not url_allowed(url, allow):
        raise InvalidRequest(
            "This server_url is not in the server's MCP allowlist (--mcp-allow).",
            param=f"{param}.server_url",
        )
    headers = _headers(tool, param)
    allowed, read_only = _allowed_tools(tool.get("allowed_tools"), f"{param}.allowed_tools")
    always, never, default = _approval(tool.get("require_approval"), f"{param}.require_approval")
    return McpEntry(
        param=param,
        label=label,
        address=McpServerAddress(url, headers, allow),
        allowed=allowed,
        read_only_only=read_only,
        approval_always=always,
        approval_never=never,
        approval_default=default,
    )


def url_allowed(url: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `url` is an http(s) URL under one of `prefixes` (see the module docstring)."""
    target = urlsplit(url)
    if target.scheme not in _DEFAULT_PORTS or not target.hostname:
        return False
    if target.username is not None or target.password is not None or target.fragment:
        return False
    segments = unquote(target.path).split("/")
    if any(segment in (".", "..") for segment in segments) or "\\" in target.path:
        return False
    try:
        origin = (target.scheme, target.hostname, target.port or _DEFAULT_PORTS[target.scheme])
    except ValueError:  # a port that is not a number
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if allowed.scheme not in _DEFAULT_PORTS or not allowed.hostname:
            continue
        try:
            port = allowed.port or _DEFAULT_PORTS[allowed.scheme]
        except ValueError:
            continue
        if (allowed.scheme, allowed.hostname, port) != origin:
            continue
        base = allowed.path.rstrip("/")
        if not base or target.path == base or target.path.startswith(base + "/"):
            return True
    return False


def check_prefix(prefix: str) -> str:
    """An `--mcp-allow` value: an http(s) URL with a host (ValueError otherwise)."""
    parts = urlsplit(prefix)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username:
        raise ValueError(f"not an http(s) URL prefix with a host: {prefix!r}")
    return prefix


def redacted_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The request's `tools` as echoed and stored: an mcp entry's headers and token dropped
    (OpenAI does the same), so credentials never reach the store or a later reader."""
    out = []
    for tool in tools or []:
        if isinstance(tool, dict) and tool.get("type") == "mcp":
            tool = {k: v for k, v in tool.items() if k not in SECRET_FIELDS}
        out.append(tool)
    return out


def _headers(tool: dict[str, Any], param: str) -> tuple[tuple[str, str], ...]:
    raw = tool.get("headers")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict) or len(raw) > MAX_HEADERS:
        raise InvalidRequest(
            f"`headers` must be an object of at most {MAX_HEADERS} string values.",
            param=f"{param}.headers",
        )
    headers = []
    size = 0
    for name, value in raw.items():
        if not isinstance(value, str) or not re.fullmatch(r"[!#-'*+.0-9A-Z^-z|~-]+", name):
            raise InvalidRequest(
                "Each header needs a valid name and a string value.", param=f"{param}.headers"
            )
        if "\r" in value or "\n" in value:
            raise InvalidRequest("A header value holds a line break.", param=f"{param}.headers")
        size += len(name) + len(value)
        headers.append((name, value))
    token = tool.get("authorization")
    if token is not None:
        if not isinstance(token, str) or "\r" in token or "\n" in token:
            raise InvalidRequest(
                "`authorization` must be a string.", param=f"{param}.authorization"
            )
        headers.append(("Authorization", f"Bearer {token}"))
        size += len(token)
    if size > MAX_HEADER_BYTES:
        raise InvalidRequest(
            f"The headers are over {MAX_HEADER_BYTES} bytes.", param=f"{param}.headers"
        )
    return tuple(headers)


def _names(raw: Any, param: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise InvalidRequest("Expected a list of tool names.", param=param)
    return frozenset(raw)


def _allowed_tools(raw: Any, param: str) -> tuple[frozenset[str] | None, bool]:
    if raw is None:
        return None, False
    if isinstance(raw, list):
        return _names(raw, param), False
    if isinstance(raw, dict):
        names = raw.get("tool_names")
        read_only = raw.get("read_only")
        if read_only is not None and not isinstance(read_only, bool):
            raise InvalidRequest("`read_only` must be a boolean.", param=f"{param}.read_only")
        allowed = None if names is None else _names(names, f"{param}.tool_names")
        return allowed, bool(read_only)
    raise InvalidRequest("`allowed_tools` must be a list or a filter object.", param=param)


def _approval(raw: Any, param: str) -> tuple[frozenset[str] | None, frozenset[str] | None, bool]:
    if raw is None or raw == "always":
        return None, None, True
    if raw == "never":
        return None, None, False
    if not isinstance(raw, dict):
        raise InvalidRequest(
            '`require_approval` is "always", "never" or {"always": ..., "never": ...}.',
            param=param,
        )
    filters: list[frozenset[str] | None] = []
    for key in ("always", "never"):
        value = raw.get(key)
        if value is None:
            filters.append(None)
        elif isinstance(value, dict):
            names = value.get("tool_names")
            filters.append(frozenset() if names is None else _names(names, f"{param}.{key}"))
        else:
            raise InvalidRequest(f"`{key}` must be a filter object.", param=f"{param}.{key}")
    return filters[0], filters[1], True
