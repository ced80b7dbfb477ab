"""`web_search` -> gpt-oss's built-in `browser` tool (`search`, `open`, `find`).

gpt-oss was trained with `browser` declared in the system message (Harmony's
`with_browser_tool()`) and with pages shown the way the reference simple browser shows them:
`[cursor] title (url)`, a `**viewing lines [a - b] of n**` bar, then numbered lines `Lk: ...`,
links written `【id†title†domain】`; the model cites `【cursor†La-Lb】`. This module keeps that
display over a search backend (proxy/hosted/search_backends.py): `search` lists the backend's
results as a page of links, `open` shows a result's text (by link id, cursor or the result's
URL), `find` lists the lines of a page that contain a pattern. Pages live for one response;
cursors count the pages shown in it.

Only pages the backend returned can be opened: a URL it did not return is refused, and the proxy
fetches nothing itself. Each call is a `web_search_call` item whose `action` is `search` (with
its `query` and `sources`), `open_page` (`url`) or `find_in_page` (`pattern`, `url`).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from harmony import ToolNamespaceConfig
from proxy.core.tools import FunctionTool, validate_schemas
from proxy.hosted.base import HostedCall, HostedContext, HostedResult, Item, ItemEvents
from proxy.hosted.search_backends import BackendError, SearchBackend, SearchResult, search_backend

MAX_RESULTS = 20
# About the reference's 1,024-token view, in characters (a token is ~4 characters of prose).
VIEW_CHARS = 4000
_ACTIONS = {"search": "search", "open": "open_page", "find": "find_in_page"}


class UsageError(Exception):
    """A call the browser cannot follow (bad cursor, link id, location): told to the model."""


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    text: str
    # Link id -> URL, for `open(id=...)`.
    links: dict[str, str] = field(default_factory=dict)
    # Line of each link's match (find results), where `open` starts.
    lines: dict[str, int] = field(default_factory=dict)
    # A page of results (search or find): `find` does not search it.
    listing: bool = False


class BrowserToolset:
    """One request's `web_search` tool: `browser.search/open/find` over the search backend."""

    item_type = "web_search_call"
    id_prefix = "ws"
    events = ItemEvents(item="response.web_search_call", working="searching", failed_event=False)

    def __init__(self, backend: SearchBackend, param: str) -> None:
        self._backend = backend
        self._param = param
        self._stack: list[Page] = []
        self._results: dict[str, SearchResult] = {}

    def tools(self) -> tuple[FunctionTool, ...]:
        config = ToolNamespaceConfig.browser()
        return validate_schemas(
            tuple(
                FunctionTool(
                    name=tool.name,
                    description=tool.description,
                    parameters=tool.parameters,
                    strict=True,
                    param=self._param,
                    parameters_param=self._param,
                    namespace="browser",
                    namespace_description=config.description or "",
                    builtin="browser",
                )
                for tool in config.tools
            )
        )

    def owns(self, key: str) -> bool:
        return key.startswith("browser.") and key[len("browser.") :] in _ACTIONS

    def leading_items(self) -> list[Item]:
        return []

    def needs_approval(self, key: str) -> bool:
        return False

    def start_item(self, call: HostedCall) -> Item:
        return {"action": {"type": _ACTIONS.get(call.key.split(".", 1)[-1], "search")}}

    async def run(self, call: HostedCall) -> HostedResult:
        name = call.key.split(".", 1)[-1]
        action: Item = {"type": _ACTIONS.get(name, "search")}
        try:
            args = json.loads(call.arguments or "{}")
            if not isinstance(args, dict):
                raise UsageError("Invalid function arguments: a JSON object is expected.")
            if name == "search":
                text = await self._search(args, action)
            elif name == "open":
                text = self._open(args, action)
            else:
                text = self._find(args, action)
        except (UsageError, BackendError, ValueError, TypeError) as exc:
            message = str(exc) or type(exc).__name__
            return HostedResult(message, {"action": action, "output": message}, error=message)
        # `output` (beside the item's `arguments`): what the model read, so the conversation
        # replays it (inputs.py); OpenAI's item has neither, clients ignore them.
        return HostedResult(text, {"action": action, "output": text})

    async def aclose(self) -> None:
        """Nothing to release: each search is its own request to the backend."""

    # ------------------------------------------------------------------ the three functions

    async def _search(self, args: dict[str, Any], action: Item) -> str:
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            raise UsageError("`query` must be a non-empty string.")
        action["query"] = query
        results = await self._backend.search(query, MAX_RESULTS)
        action["sources"] = [{"type": "url", "url": r.url} for r in results]
        for result in results:
            self._results.setdefault(result.url, result)
        chunks = [
            f"# 【{i}†{r.title}†{_domain(r.url)}】\n{r.snippet}" for i, r in enumerate(results)
        ]
        page = Page(
            url="",
            title=f"Search results for `{query}`",
            text="\n\n".join(chunks) or f"No results for `{query}`.",
            links={str(i): r.url for i, r in enumerate(results)},
            listing=True,
        )
        return self._show(page, 0, -1)

    def _open(self, args: dict[str, Any], action: Item) -> str:
        target, cursor = args.get("id", -1), _int(args.get("cursor", -1), "cursor")
        loc, num_lines = (
            _int(args.get("loc", -1), "loc"),
            _int(args.get("num_lines", -1), "num_lines"),
        )
        if isinstance(target, str):
            result = self._results.get(target)
            if result is None:
                raise UsageError(
                    f"Cannot open `{target[:200]}`: only pages the search returned can be opened."
                )
            page, start = _result_page(result), 0
        else:
            current = self._page(cursor)
            link = _int(target, "id")
            if link < 0:  # scroll the current page
                page, start = current, 0
            else:
                url = current.links.get(str(link))
                if url is None or url not in self._results:
                    raise UsageError(f"Invalid link id `{link}`.")
                page = _result_page(self._results[url])
                start = max(current.lines.get(str(link), 0) - 4, 0)
        action["url"] = page.url
        return self._show(page, start if loc < 0 else loc, num_lines)

    def _find(self, args: dict[str, Any], action: Item) -> str:
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise UsageError("`pattern` must be a non-empty string.")
        page = self._page(_int(args.get("cursor", -1), "cursor"))
        action.update(pattern=pattern, url=page.url)
        if page.listing:
            raise UsageError("Cannot run `find` on search results page or find results page")
        lines = _wrap(page.text)
        chunks, where, at, index = [], {}, 0, 0
        while at < len(lines) and len(chunks) < 50:
            if pattern.lower() in lines[at].lower():
                chunks.append(f"# 【{index}†match at L{at}】\n" + "\n".join(lines[at : at + 4]))
                where[str(index)] = at
                index, at = index + 1, at + 4
            else:
                at += 1
        found = Page(
            url=f"{page.url}/find?pattern={quote(pattern)}",
            title=f"Find results for text: `{pattern}` in `{page.title}`",
            text="\n\n".join(chunks) or f"No `find` results for pattern: `{pattern}`",
            links=dict.fromkeys(where, page.url),
            lines=where,
            listing=True,
        )
        return self._show(found, 0, -1)

    # ------------------------------------------------------------------ display

    def _page(self, cursor: int) -> Page:
        if not self._stack:
            raise UsageError("No pages to access!")
        if cursor == -1:
            return self._stack[-1]
        if not 0 <= cursor < len(self._stack):
            raise UsageError(
                f"Cursor `{cursor}` is out of range. Available cursor indices: "
                f"[0 - {len(self._stack) - 1}]."
            )
        return self._stack[cursor]

    def _show(self, page: Page, loc: int, num_lines: int) -> str:
        """The page as a new cursor, from line `loc` (as many lines as fit the view)."""
        lines = _wrap(page.text)
        if loc >= len(lines) or loc < 0:
            raise UsageError(
                f"Invalid location parameter: `{loc}`. Cannot exceed page maximum of "
                f"{len(lines) - 1}."
            )
        end = min(loc + num_lines, len(lines)) if num_lines > 0 else _fit(lines, loc)
        self._stack.append(page)
        header = page.title + (f" ({page.url})" if page.url else "")
        body = "\n".join(f"L{i}: {lines[i]}" for i in range(loc, end))
        bar = f"**viewing lines [{loc} - {end - 1}] of {len(lines) - 1}**"
        return f"[{len(self._stack) - 1}] {header}\n{bar}\n\n{body}"


def _result_page(result: SearchResult) -> Page:
    return Page(url=result.url, title=result.title, text=result.text)


def _wrap(text: str, width: int = 80) -> list[str]:
    """Lines as the reference numbers them: each paragraph line wrapped at 80 columns."""
    out: list[str] = []
    for line in text.split("\n"):
        out.extend(
            textwrap.wrap(line, width=width, replace_whitespace=False, drop_whitespace=False)
            if line
            else [""]
        )
    return out


def _fit(lines: list[str], loc: int) -> int:
    """The end of the view starting at `loc`: lines while they fit VIEW_CHARS (at least one)."""
    used, end = 0, loc
    while end < len(lines) and (end == loc or used + len(lines[end]) + 8 <= VIEW_CHARS):
        used += len(lines[end]) + 8
        end += 1
    return end


def _domain(url: str) -> str:
    return urlsplit(url).netloc or url


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"`{name}` should be an integer, not `{type(value).__name__}`")
    return int(value)


async def open_web_search(
    tool: dict[str, Any], param: str, context: HostedContext
) -> BrowserToolset | None:
    """The request's `web_search` entry; None (left out of the prompt) without a backend."""
    spec = context.config.web_search_backend
    if spec is None:
        return None
    return BrowserToolset(search_backend(spec), param)


__all__ = ["BrowserToolset", "Page", "open_web_search"]
