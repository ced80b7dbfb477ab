"""The Conversations API's own 404s, OpenAI-shaped (proxy/core/errors.py)."""

from __future__ import annotations

from proxy.core.errors import ProxyError


class ConversationNotFound(ProxyError):
    """404: a conversation that does not exist, was deleted, or is another owner's (the same
    answer for each, so nobody learns that another key's conversation exists)."""

    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, conversation_id: str, param: str | None = None) -> None:
        super().__init__(
            f"Conversation with id {conversation_id!r} not found.",
            param=param,
            code="conversation_not_found",
        )


class ItemNotFound(ProxyError):
    """404: no item with that id in the conversation."""

    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, item_id: str, param: str | None = None) -> None:
        super().__init__(
            f"Item with id {item_id!r} not found in this conversation.",
            param=param,
            code="item_not_found",
        )
