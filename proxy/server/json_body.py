"""Request bodies: parsed by orjson, and counted before FastAPI validates them.

Two costs grow with a body before any handler code runs, and both held the event loop:
- FastAPI parses JSON with the standard library's `json.loads`: ~100 ms of loop time for a
  2.9 MB body of tool schemas (py-spy, issue 17's hostile requests). orjson parses the same body
  in a fraction of that. What orjson refuses and the standard library accepts (lone UTF-16
  surrogates, which the gate then names in a 400) falls back to `json.loads`, so the answers
  stay the same. A body nested past orjson's 1,024 levels is a 400 at once: `json.loads` would
  recurse through it on the loop (half a second for 100,000 levels) before failing.
- pydantic then builds a model per message, tool call and tool: 20,000 past tool calls (1.8 MB)
  took ~0.5 s, all before the gate could count them. So each route may name a body check that
  counts the raw lists first (each API's `precheck_body`: messages, calls, tools, stop strings),
  an O(number of items) refusal before any model is built.
A refusal from here is a `BodyRefused` (FastAPI turns anything else raised while reading the
body into a bare "error parsing the body"), answered with the API's own error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from proxy.core.errors import InvalidRequest, ProxyError

ORJSON_DEPTH = 1024

BodyCheck = Callable[[Any], None]


class BodyRefused(HTTPException):
    """A refusal raised while reading the body, carrying the error to answer with."""

    def __init__(self, error: ProxyError) -> None:
        super().__init__(error.status_code, error.message)
        self.error = error


class CheckedJsonRequest(Request):
    """A request whose `json()` is orjson's, then the route's body check."""

    def __init__(self, scope: Any, receive: Any, check: BodyCheck | None) -> None:
        super().__init__(scope, receive)
        self._check = check

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if str(exc).startswith("depth limit exceeded"):
                    raise BodyRefused(
                        InvalidRequest(
                            f"The request body is nested more than {ORJSON_DEPTH} levels deep.",
                            code="invalid_json",
                        )
                    ) from None
                data = json.loads(body)  # its answer: a value, or FastAPI's own 400
            if self._check is not None:
                try:
                    self._check(data)
                except ProxyError as error:
                    raise BodyRefused(error) from None
            self._json = data
        return self._json


def checked_route_class(checks: Mapping[str, BodyCheck]) -> type[APIRoute]:
    """An APIRoute class whose JSON bodies are parsed by orjson and, on the paths of `checks`,
    counted by their check before validation."""

    class CheckedJsonRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            check = checks.get(self.path)

            async def route(request: Request) -> Response:
                return await handler(CheckedJsonRequest(request.scope, request.receive, check))

            return route

    return CheckedJsonRoute
