"""The pure-ASGI edge: everything decided about a request before its body is read.

In order, outermost first (`HarmonyProxyApp.build_middleware_stack`):
- `EdgeMiddleware`: the request id, and the error handlers for what escapes the routes;
- CORS (Starlette's), when origins are configured, so browsers can read even a 401;
- `ApiKeyCheck`: the API key, from the headers alone. An unauthenticated client costs a header
  scan: it cannot make the server buffer or parse a body (before, the key was a FastAPI
  dependency, checked after the body had been read and validated); `/metrics` too when it has
  a key of its own;
- `KeyLimits` (proxy/server/key_limits.py): the caller's own concurrency and token budget (429
  with `Retry-After`), still before the body;
- `BodyGate`: the body's size (413 past `max_bytes`, declared or sent) and its arrival time
  (408 when it is not complete within `deadline` seconds: a client trickling one byte a second
  would otherwise hold a connection and a buffer for as long as it likes).
All are plain ASGI classes (no per-event coroutine wrapper on the streaming path).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
from collections.abc import Awaitable

from fastapi import FastAPI, Request
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.core.errors import InvalidApiKey, PayloadTooLarge, ProxyError, RequestTimeout
from proxy.server.error_handlers import error_content
from proxy.server.keys import ApiKeys

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()


class _Sender:
    """The `send` handed to the app: adds the request id to the response start and remembers
    that the response started. Not a coroutine function: it returns the server's own `send`
    awaitable, so a streamed event costs one plain call here, not one more coroutine frame."""

    __slots__ = ("send", "header", "started")

    def __init__(self, send: Send, header: tuple[bytes, bytes]) -> None:
        self.send = send
        self.header = header
        self.started = False

    def __call__(self, message: Message) -> Awaitable[None]:
        if not self.started and message["type"] == "http.response.start":
            self.started = True
            message["headers"] = [*message.get("headers", ()), self.header]
        return self.send(message)


class EdgeMiddleware:
    """The one ASGI layer around the app (pure ASGI: no per-event coroutine wrappers).

    It replaces Starlette's ServerErrorMiddleware and ExceptionMiddleware and our request-id
    middleware, which each wrapped every streamed event in a coroutine of their own:
    - request id: the client's X-Request-Id (or a new one) in `scope["state"]`, echoed on the
      response;
    - exception handlers: published in the scope for the routes (FastAPI's route wrapper
      answers what is raised inside an endpoint); what escapes the routes (404/405 from the
      router, errors in middleware) is answered here by the same handlers;
    - anything else is a 500 from the `Exception` handler (logged and counted there), then
      re-raised so the server logs it, as Starlette does; after the response started nothing
      more can be sent, and the exception propagates.
    """

    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        handlers = dict(fastapi.exception_handlers)
        self.fallback = handlers.pop(Exception, None) or handlers.pop(500, None)
        self.status_handlers = {k: v for k, v in handlers.items() if isinstance(k, int)}
        self.exception_handlers = {k: v for k, v in handlers.items() if not isinstance(k, int)}
        self.exception_handlers.setdefault(StarletteHTTPException, _plain_http_error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers") or ():
            if name == _REQUEST_ID_KEY:
                given = value
                break
        request_id = given.decode("latin-1").strip()[:128] or secrets.token_hex(12)
        scope.setdefault("state", {})["request_id"] = request_id
        scope["starlette.exception_handlers"] = (self.exception_handlers, self.status_handlers)
        sender = _Sender(send, (_REQUEST_ID_KEY, request_id.encode("latin-1")))
        try:
            await self.app(scope, receive, sender)
        except Exception as exc:
            handler = None
            if isinstance(exc, StarletteHTTPException):
                handler = self.status_handlers.get(exc.status_code)
            if handler is None:
                for cls in type(exc).__mro__:
                    handler = self.exception_handlers.get(cls)
                    if handler is not None:
                        break
            unexpected = handler is None
            if unexpected:
                handler = self.fallback
            if sender.started:
                raise
            response = None if handler is None else handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            if response is None:
                response = PlainTextResponse("Internal Server Error", status_code=500)
            await response(scope, receive, sender)
            if unexpected:
                raise


async def _plain_http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)


class HarmonyProxyApp(FastAPI):
    """FastAPI with one edge layer (`EdgeMiddleware`) instead of Starlette's error and
    exception middlewares; user middlewares (body-size limit, CORS) and FastAPI's exit stack
    stay as they were."""

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = AsyncExitStackMiddleware(self.router)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return EdgeMiddleware(app, self)


class ApiKeyCheck:
    """ASGI middleware: 401 for a /v1 request without one of the configured keys, and for
    /metrics without the metrics key when one is configured.

    The key is read from `Authorization: Bearer <key>` (OpenAI's clients) or `x-api-key`
    (Anthropic's) and looked up in `keys.current` (proxy/server/keys.py: swapped whole on
    SIGHUP, read once here). Other probes (/health, /ready) stay open; CORS preflights carry no
    credentials and are answered by the CORS layer outside this one.
    """

    def __init__(self, app: ASGIApp, keys: ApiKeys, metrics_key: str | None = None) -> None:
        self.app = app
        self.keys = keys
        self.metrics_key = metrics_key.encode() if metrics_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if self.metrics_key is not None and path == "/metrics":
            given = _bearer(scope)
            if given is None or not secrets.compare_digest(given, self.metrics_key):
                await send_error(send, InvalidApiKey(), path)
                return
        if not self.keys.required:
            await self.app(scope, receive, send)
            return
        given = _bearer(scope)
        caller = None if given is None else self.keys.match(given)
        if caller is not None:
            scope.setdefault("state", {})["caller"] = caller
        if caller is not None or not path.startswith("/v1/") or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        await send_error(send, InvalidApiKey(), path)


def _bearer(scope: Scope) -> bytes | None:
    """The key the request carries: `Authorization: Bearer <key>`, else `x-api-key`."""
    given: bytes | None = None
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, key = value.partition(b" ")
            if scheme.lower() == b"bearer":
                given = key.strip()
            break
        if name == b"x-api-key" and given is None:
            given = value.strip()
    return given


class BodyGate:
    """ASGI middleware: a POST body is at most `max_bytes` (413) and complete within
    `deadline` seconds of the request's start (408); then it is replayed to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int | None, deadline: float | None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.deadline = deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if limit is not None and declared is not None and declared.isdigit():
            if int(declared) > limit:
                await send_error(send, PayloadTooLarge(limit), scope["path"])
                return
        try:
            async with asyncio.timeout(self.deadline):
                body, pending = await _read_body(receive, limit)
        except TimeoutError:
            await send_error(send, RequestTimeout(self.deadline or 0), scope["path"])
            return
        if body is None:
            await send_error(send, PayloadTooLarge(limit or 0), scope["path"])
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed, pending
            if not replayed:
                replayed = True
                if pending is None:
                    return {"type": "http.request", "body": body, "more_body": False}
            if pending is not None:
                message, pending = pending, None
                return message
            return await receive()

        await self.app(scope, replay, send)


async def _read_body(receive: Receive, limit: int | None) -> tuple[bytes | None, Message | None]:
    """The whole body (None past `limit`), or a disconnect that came first (then no body)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", message
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            return None, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


async def send_error(send: Send, error: ProxyError, path: str) -> None:
    """An error answered from the edge in the shape of `path`'s API, closing the connection
    (its body may be unread); `Retry-After` when the error says when to retry."""
    status, body = error_content(error, path)
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"connection", b"close"),
    ]
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})
