"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}` with the right status.

Every failure a client can see goes through `ProxyError`, so the body shape and status are
decided in one place: request validation, auth, unknown models, the engine still loading, and
engine failures (which become an SSE `error` event once a stream has started).
"""

from __future__ import annotations

import math
from typing import Any


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


class RequestTimeout(ProxyError):
    """408: the request body did not arrive within the server's deadline."""

    status_code = 408
    error_type = "invalid_request_error"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body did not arrive within {seconds:g} s; send it at once.",
            code="request_timeout",
        )
