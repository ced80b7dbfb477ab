"""Records for the response-store tests: one stored exchange (a question and its answer)."""

from __future__ import annotations

import time

from proxy.api.responses.store import StoredResponse

OWNER = "key:alice"


def record(
    rid: str,
    *,
    created_at: float | None = None,
    previous: str | None = None,
    text: str = "Hello!",
    owner: str = OWNER,
    lineage: list[str] | None = None,
) -> StoredResponse:
    created = time.time() if created_at is None else created_at
    message = {
        "id": f"msg_{rid}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    user = {
        "id": f"in_{rid}",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": f"question {rid}"}],
    }
    return StoredResponse(
        id=rid,
        created_at=created,
        response={
            "id": rid,
            "object": "response",
            "created_at": int(created),
            "status": "completed",
            "output": [message],
            "output_text": text,
            "usage": {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
            "metadata": {},
        },
        input_items=[user],
        conversation=[user, message],
        previous_response_id=previous,
        owner=owner,
        lineage=lineage if lineage is not None else ([previous] if previous else []),
    )
