"""Anthropic's error shape: `{"type": "error", "error": {"type", "message"}}`, its statuses.

Every error on a Messages route is answered in this shape (proxy/server/error_handlers.py picks
it by path, for the errors of the core, of request validation, of the edge's key and body
checks, and the router's 404/405), so Anthropic's SDKs and Claude Code read and retry them as
they would Anthropic's own. Anthropic has no `param`: the field's path leads the message
(`messages.3.content.0.tool_use_id: ...`), as in its own errors.
"""

from __future__ import annotations

from typing import Any

from proxy.core.errors import ProxyError

# The server is busy or not serving yet (loading, draining): Anthropic's "overloaded", which its
# clients retry after a pause.
OVERLOADED = 529
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    OVERLOADED: "overloaded_error",
}


def error_payload(error: ProxyError) -> tuple[int, dict[str, Any]]:
    """(status, body) of `error` as Anthropic answers it."""
    status = OVERLOADED if error.status_code == 503 else error.status_code
    message = error.message
    if error.param and not message.startswith(error.param):
        message = f"{error.param}: {message}"
    kind = _TYPES.get(status, "api_error")
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def validation_param(loc: tuple[Any, ...]) -> str | None:
    """`("body", "messages", 3, "content")` -> `"messages.3.content"` (Anthropic's paths)."""
    parts = [str(p) for p in (loc[1:] if loc and loc[0] == "body" else loc)]
    kept = [p for p in parts if not (p in ("str", "int", "float", "bool") or "[" in p)]
    return ".".join(kept) or None
