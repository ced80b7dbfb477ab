"""A conversation's items as clients send them: counted, normalised, measured, checked.

Items go through the Responses input normaliser (proxy/api/responses/inputs.py), so a
conversation holds exactly the item shapes `input` accepts, ids given and reasoning in clear,
and through its conversion to parts, so a tool output whose call is in neither the batch nor the
conversation is refused now rather than breaking every later response on the conversation. Each
check names the client's parameter (`items[3].call_id`) and runs before anything is stored.
"""

from __future__ import annotations

from typing import Any

from proxy.api.conversations.records import MAX_ITEMS_PER_REQUEST, OUTPUT_TYPES
from proxy.api.responses.inputs import Item, normalise_input, to_parts
from proxy.api.responses.store_records import dumps_json
from proxy.core.errors import InvalidRequest
from proxy.core.sealing import BoundSealer


def count_items(raw: Any, param: str = "items") -> None:
    """OpenAI's 20 items a request, counted on the raw body before any model is built."""
    if isinstance(raw, list) and len(raw) > MAX_ITEMS_PER_REQUEST:
        raise InvalidRequest(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{MAX_ITEMS_PER_REQUEST}, but got an array with length {len(raw)} instead.",
            param=param,
            code="array_above_max_length",
        )


def precheck_body(data: Any) -> None:
    """The body check of the create routes (proxy/server/json_body.py)."""
    if isinstance(data, dict):
        count_items(data.get("items"))


def read_items(
    raw: Any, sealer: BoundSealer | None, max_item_bytes: int | None, param: str = "items"
) -> list[Item]:
    """`raw` as normalised items: at most 20, each within `max_item_bytes`, ids unique."""
    if not isinstance(raw, list):
        raise InvalidRequest(f"`{param}` must be an array of items.", param=param)
    count_items(raw, param)
    items = normalise_input(raw, sealer, name=param)
    check_sizes(items, max_item_bytes, param)
    check_unique(items, set(), param)
    return items


def item_bytes(item: Item) -> int:
    """An item's size as the store counts it (its JSON text in UTF-8)."""
    return len(dumps_json(item).encode("utf-8", "surrogatepass"))


def check_sizes(items: list[Item], max_item_bytes: int | None, param: str) -> int:
    """400 for the first item over `max_item_bytes`; the bytes of all of them."""
    total = 0
    for i, item in enumerate(items):
        size = item_bytes(item)
        if max_item_bytes is not None and size > max_item_bytes:
            raise InvalidRequest(
                f"`{param}[{i}]` is {size} bytes; this server keeps items of at most "
                f"{max_item_bytes} bytes in a conversation.",
                param=f"{param}[{i}]",
                code="limit_exceeded",
            )
        total += size
    return total


def check_unique(items: list[Item], taken: set[str], param: str) -> None:
    """400 for an item whose id is in `taken` (the conversation's) or earlier in `items`."""
    seen = set(taken)
    for i, item in enumerate(items):
        if item["id"] in seen:
            raise InvalidRequest(
                f"Duplicate item found with id {item['id']!r}. Remove duplicate items and try "
                "again.",
                param=f"{param}[{i}].id",
                code="duplicate_item",
            )
        seen.add(item["id"])


def outside_calls(items: list[Item]) -> list[str]:
    """The call ids that outputs in `items` answer (the conversation must hold those calls
    the batch does not)."""
    return sorted({item["call_id"] for item in items if item["type"] in OUTPUT_TYPES})


def check_calls(items: list[Item], known_calls: set[str], param: str = "items") -> None:
    """400 (naming `items[i].call_id`) for a tool output answering no call made before it."""
    to_parts(items, None, 0, name=param, known_calls=frozenset(known_calls))
