"""Where the `browser` tool's searches go: an HTTP search endpoint, or an MCP server's `search`.

`--web-search-backend URL` names an HTTP endpoint with this contract (small, so any search
service can be wrapped in a few lines):

    GET URL?q=<query>&n=<max results>   ->   200 {"results": [{"title": "...", "url": "...",
                                                  "text": "...", "snippet": "..."}, ...]}

`title` and `url` are required; `text` is the page's content as the model may open it, and
`snippet` a short extract shown in the result list (either may be missing: each stands in for
the other). `--web-search-backend mcp:URL` calls the `search` tool of the MCP server at URL
(streamable HTTP) with `{"query": ..., "n": ...}`; its structured content, or its text content
parsed as JSON, has the same `results` shape.

The proxy requests nothing but the configured backend: a page the model opens is one the backend
returned (proxy/hosted/browser.py), never a URL fetched on the model's say-so (no SSRF through
the model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

# A backend's answer is read up to this size, and each result's text kept up to this length.
MAX_RESPONSE_BYTES = 4 << 20
MAX_TEXT_CHARS = 100_000


class BackendError(Exception):
    """The search backend failed (down, slow, or an answer outside the contract)."""


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    text: str
    snippet: str


class SearchBackend(Protocol):
    # Shown to the model as the source of its results (the browser's `sources=`).
    source: str

    async def search(self, query: str, n: int) -> list[SearchResult]: ...


def search_backend(spec: str, timeout: float = 15.0) -> SearchBackend:
    """The backend `--web-search-backend` names: `mcp:URL` or an http(s) URL."""
    if spec.startswith("mcp:"):
        return McpSearch(spec[len("mcp:") :], timeout)
    return HttpSearch(spec, timeout)


class HttpSearch:
    """GET URL?q=&n= -> {"results": [...]}."""

    source = "web"

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout

    async def search(self, query: str, n: int) -> list[SearchResult]:
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client,
                client.stream("GET", self._url, params={"q": query, "n": n}) as answer,
            ):
                if answer.status_code != 200:
                    raise BackendError(f"the search backend answered HTTP {answer.status_code}")
                body = bytearray()
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise BackendError("the search backend's answer is too large")
        except httpx.HTTPError as exc:
            raise BackendError(f"the search backend is unreachable ({type(exc).__name__})") from exc
        try:
            return parse_results(json.loads(bytes(body)), n)
        except ValueError as exc:
            raise BackendError(f"the search backend's answer is not JSON: {exc}") from exc


class McpSearch:
    """The `search` tool of an MCP server (streamable HTTP)."""

    source = "web"

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout

    async def search(self, query: str, n: int) -> list[SearchResult]:
        from proxy.hosted.mcp_client import McpFailure, call_tool
        from proxy.hosted.mcp_entry import McpServerAddress

        outcome = await call_tool(
            McpServerAddress(self._url), "search", {"query": query, "n": n}, self._timeout
        )
        if isinstance(outcome, McpFailure):
            raise BackendError(f"the MCP search server failed: {outcome.message}")
        if outcome.is_error:
            raise BackendError("the MCP search tool returned an error")
        payload: Any = outcome.structured
        if payload is None:
            text = "".join(str(block.get("text", "")) for block in outcome.content)
            try:
                payload = json.loads(text)
            except ValueError as exc:
                raise BackendError("the MCP search tool's answer is not JSON") from exc
        return parse_results(payload, n)


def parse_results(payload: Any, n: int) -> list[SearchResult]:
    """The contract's `results` (a bare list is accepted too); ValueError outside it."""
    if isinstance(payload, dict) and "results" not in payload and "result" in payload:
        payload = payload["result"]  # an MCP tool's non-object answer, wrapped
    items = payload.get("results") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise BackendError('the search answer has no "results" list')
    results = []
    for item in items[: max(n, 0)]:
        if not isinstance(item, dict):
            continue
        title, url = item.get("title"), item.get("url")
        if not isinstance(url, str) or not url:
            continue
        text = item.get("text") if isinstance(item.get("text"), str) else ""
        snippet = item.get("snippet") if isinstance(item.get("snippet"), str) else ""
        results.append(
            SearchResult(
                title=title if isinstance(title, str) and title else url,
                url=url,
                text=(text or snippet)[:MAX_TEXT_CHARS],
                snippet=(snippet or text)[:500],
            )
        )
    return results
