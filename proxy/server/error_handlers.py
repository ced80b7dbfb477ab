"""Every error answered OpenAI-style: no FastAPI `{"detail": ...}` bodies, no tracebacks.

The error classes and their body live in proxy/core/errors.py (the core raises them); this
module is the HTTP side: the JSON response, `Retry-After`, and FastAPI's own failures
(request validation, unknown routes, unexpected exceptions) in the same shape.
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

from proxy.core.errors import InvalidRequest, ProxyError, error_body
from proxy.server.json_body import BodyRefused

logger = logging.getLogger("proxy")


class _AsciiJSONResponse(JSONResponse):
    r"""JSON with non-ASCII escaped: an error message may quote the client's own text, and a
    lone surrogate in it (`"model": "\ud800"`) cannot be encoded as UTF-8 (a 500 otherwise)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(error: ProxyError) -> JSONResponse:
    """The error as JSON; `Retry-After` when the error says when to retry (429, 503)."""
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return _AsciiJSONResponse(error.body(), status_code=error.status_code, headers=headers)


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
    async def _proxy_error(_: Request, exc: ProxyError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if on_error is not None:
            on_error(request, 400)
        errors = exc.errors()
        first = errors[0] if errors else {}
        param = _validation_param(tuple(first.get("loc", ())))
        message = first.get("msg", "Invalid request.")
        if first.get("type") == "json_invalid":
            message, param = "The request body is not valid JSON.", None
        elif param:
            message = f"Invalid value for `{param}`: {message}"
        return error_response(InvalidRequest(message, param=param))

    @app.exception_handler(BodyRefused)
    async def _body_refused(request: Request, exc: BodyRefused) -> JSONResponse:
        if on_error is not None:
            on_error(request, exc.error.status_code)
        return error_response(exc.error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return _AsciiJSONResponse(
            error_body(str(exc.detail), error_type, None, code), status_code=exc.status_code
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        if on_error is not None:
            on_error(request, 500)
        return _AsciiJSONResponse(
            error_body(f"Internal error: {type(exc).__name__}", "server_error", None, None),
            status_code=500,
        )
