"""Every error answered in its API's shape: no FastAPI `{"detail": ...}` bodies, no tracebacks.

The error classes and their body live in proxy/core/errors.py (the core raises them); this
module is the HTTP side: the JSON response, `Retry-After`, and FastAPI's own failures
(request validation, unknown routes, unexpected exceptions) in the same shape. The shape is
decided here by path, in one place (`error_content`): OpenAI's everywhere, Anthropic's
(proxy/api/messages/errors.py) under `/v1/messages`, including the edge's 401/408/413.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from proxy.api.messages import errors as anthropic
from proxy.core.errors import InvalidRequest, ProxyError
from proxy.server.json_body import BodyRefused

logger = logging.getLogger("proxy")


class _AsciiJSONResponse(JSONResponse):
    r"""JSON with non-ASCII escaped: an error message may quote the client's own text, and a
    lone surrogate in it (`"model": "\ud800"`) cannot be encoded as UTF-8 (a 500 otherwise)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


MESSAGES_PREFIX = "/v1/messages"


def anthropic_path(path: str) -> bool:
    """Is `path` one of the Anthropic Messages API's (its errors take Anthropic's shape)?"""
    return path == MESSAGES_PREFIX or path.startswith(MESSAGES_PREFIX + "/")


def error_content(error: ProxyError, path: str = "") -> tuple[int, dict[str, Any]]:
    """(status, body) of `error` in the shape of the API that `path` belongs to."""
    if anthropic_path(path):
        return anthropic.error_payload(error)
    return error.status_code, error.body()


def error_response(error: ProxyError, path: str = "") -> JSONResponse:
    """The error as JSON; `Retry-After` when the error says when to retry (429, 503)."""
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    status, body = error_content(error, path)
    return _AsciiJSONResponse(body, status_code=status, headers=headers)


_UNION_TAGS = {"system", "developer", "user", "assistant", "tool", "str", "int", "float", "bool"}


def _validation_param(loc: tuple[Any, ...]) -> str | None:
    """`("body", "messages", 0, "user", "content")` -> `"messages[0].content"` (OpenAI style).

    Pydantic adds union members to locations (`user` for the tagged message union, `str` or
    `list[ContentPart]` for content); clients only know the field path.
    """
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or "[" in part or part.startswith("function-"):
            continue
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or None


def install_error_handlers(
    app: FastAPI, on_error: Callable[[Request, int], None] | None = None
) -> None:
    """Answer every error OpenAI-style: no FastAPI `{"detail": ...}` bodies, no tracebacks.

    `on_error(request, status)` is told about request-validation failures and unexpected
    exceptions (for metrics); the other errors are counted where they are raised. Unexpected
    exceptions are logged with their traceback: they are bugs, not engine failures.
    """

    @app.exception_handler(ProxyError)
    async def _proxy_error(request: Request, exc: ProxyError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if on_error is not None:
            on_error(request, 400)
        errors = exc.errors()
        first = errors[0] if errors else {}
        path = request.url.path
        loc = tuple(first.get("loc", ()))
        message = first.get("msg", "Invalid request.")
        if anthropic_path(path):
            param = anthropic.validation_param(loc)  # "messages.0.role: Input should be ..."
        else:
            param = _validation_param(loc)
        if first.get("type") == "json_invalid":
            message, param = "The request body is not valid JSON.", None
        elif param and not anthropic_path(path):
            message = f"Invalid value for `{param}`: {message}"
        return error_response(InvalidRequest(message, param=param), path)

    @app.exception_handler(BodyRefused)
    async def _body_refused(request: Request, exc: BodyRefused) -> JSONResponse:
        if on_error is not None:
            on_error(request, exc.error.status_code)
        return error_response(exc.error, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        error = ProxyError(str(exc.detail), code=code)
        error.status_code, error.error_type = exc.status_code, error_type
        return error_response(error, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        if on_error is not None:
            on_error(request, 500)
        return error_response(ProxyError(f"Internal error: {type(exc).__name__}"), request.url.path)
