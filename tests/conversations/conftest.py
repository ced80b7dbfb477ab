"""The response-store fixtures (a real PostgreSQL started once per session, and `location`:
a SQLite file, then a fresh PostgreSQL database), and a conversation store on each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy.api.conversations.store import ConversationStore, open_conversation_store
from proxy.api.responses.store import open_store
from tests.responses.conftest import location, postgres_server, postgres_url

__all__ = ["location", "postgres_server", "postgres_url"]


@pytest.fixture
def conversations(location: str) -> Iterator[ConversationStore]:
    """A conversation store in a response store at `location` (SQLite, then PostgreSQL)."""
    responses = open_store(location)
    yield open_conversation_store(responses, max_bytes=64 * 1024)
    responses.close()
