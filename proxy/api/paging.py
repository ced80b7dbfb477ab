"""OpenAI's cursor pages (`limit`, `order`, `after` in; a `list` object out), shared by the
routes that list items: a response's input items and a conversation's items."""

from __future__ import annotations

from typing import Any

from proxy.core.errors import InvalidRequest

MAX_PAGE = 100


def check_page(limit: int, order: str) -> None:
    """400 naming the parameter for an `order` or `limit` OpenAI would refuse."""
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc.", param="order")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"`limit` must be between 1 and {MAX_PAGE}.", param="limit")


def list_page(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    """One page as OpenAI's `list` object."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
