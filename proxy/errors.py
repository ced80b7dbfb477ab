"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}` with the right status.

Every failure a client can see goes through `ProxyError`, so the body shape and status are
decided in one place: request validation, auth, unknown models, the engine still loading, and
engine failures (which become an SSE `error` event once a stream has started).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

logger = logging.getLogger("proxy")


class ProxyError(Exception):
    """An error answered to the client as OpenAI-shaped JSON."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.param, self.code)


class InvalidRequest(ProxyError):
    """400: the request is malformed or asks for something this server cannot do."""

    status_code = 400
    error_type = "invalid_request_error"


class ModelNotFound(ProxyError):
    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )


class ResponseNotFound(ProxyError):
    """404: a stored response that does not exist, was deleted, expired, or was never stored."""

    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, response_id: str, param: str | None = None) -> None:
        super().__init__(
            f"Response with id {response_id!r} not found (it was never stored, was deleted, "
            "or is past this server's retention).",
            param=param,
            code="response_not_found",
        )


class InvalidApiKey(ProxyError):
    status_code = 401
    error_type = "invalid_request_error"

    def __init__(self) -> None:
        super().__init__(
            "Incorrect API key provided. Send it as `Authorization: Bearer <key>`.",
            code="invalid_api_key",
        )


class EngineLoading(ProxyError):
    """503: the engine is still loading (or died); the client should retry later."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, message: str = "The engine is still loading; retry shortly.") -> None:
        super().__init__(message, code="engine_not_ready")

    @property
    def retry_after(self) -> int:
        """The busy replica's own hint when there is one (its 429/503), else 5 s."""
        hint = getattr(self.__cause__, "retry_after", None) or 5
        return max(1, math.ceil(hint))


class TooManyRequests(ProxyError):
    """429: the server is at its concurrency limit and its queue is full (or the wait too long)."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after = retry_after


class ServerDraining(ProxyError):
    """503: the server is shutting down for a deploy; retry (on another replica)."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(
            "The server is shutting down; retry the request.", code="server_shutting_down"
        )
        self.retry_after = retry_after


class PayloadTooLarge(ProxyError):
    status_code = 413
    error_type = "invalid_request_error"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than this server's limit of {limit} bytes.",
            code="request_too_large",
        )


class EngineFailure(ProxyError):
    """500: the engine failed while generating."""

    status_code = 500
    error_type = "server_error"

    def __init__(self, message: str) -> None:
        super().__init__(f"The engine failed while generating: {message}", code="engine_error")


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


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
