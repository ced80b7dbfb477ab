"""Dropping the oldest turns of a conversation that no longer fits the context (Responses
`truncation: "auto"`).

A request asks for it with `GenerationRequest.truncate`; planning (proxy/core/planning.py) calls
`fit_to_context` only when the whole prompt leaves no room, or less than the request's
`max_output_tokens`. What is kept, whatever is dropped:
- the leading instructions and developer messages (the system and developer prompt);
- the latest user message, where it stands: in an agent's tool loop that is the task, followed
  by many rounds of calls and results, and the oldest rounds go first, not the task.
Everything else goes oldest first, in whole units: a user or developer message alone, or an
assistant turn with the tool results that follow it (a result is never kept without its call).
The fewest units are dropped that leave the answer its room: `max_output_tokens` when given,
else a quarter of the context (at most `ANSWER_ROOM_CAP` tokens), so the answer is not cut off
at once. If even every droppable unit gone is not enough, nothing is dropped and the request
fails as without truncation (400 `context_length_exceeded`).

The search is a bisection over the number of units dropped (the prompt only shrinks as units
go), and each render costs what it keeps. A conversation far over the context keeps little at
the answer, so the probes cost about one whole render together (half, a quarter, ...); one
barely over it has about the context's size, which is what each of its log2(units) probes
renders. Either way, a few renders' worth of the planning thread, not one per unit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from proxy.core.request import (
    AssistantTurn,
    DeveloperText,
    GenerationRequest,
    Instructions,
    Part,
    ToolResult,
    UserText,
)

# Without max_output_tokens, the room left for the answer: a quarter of the context, at most this.
ANSWER_ROOM_CAP = 8192


def answer_room(request: GenerationRequest, max_model_len: int) -> int:
    """The tokens a truncated prompt must leave free for the answer."""
    if request.sampling.max_tokens is not None:
        return request.sampling.max_tokens
    return max(1, min(max_model_len // 4, ANSWER_ROOM_CAP))


def droppable_units(parts: Sequence[Part]) -> list[range]:
    """The part ranges that may be dropped, oldest first (see the module docstring)."""
    start = 0
    while start < len(parts) and type(parts[start]) in (Instructions, DeveloperText):
        start += 1  # the system and developer prompt
    last_user = max((i for i, p in enumerate(parts) if type(p) is UserText), default=-1)
    units: list[range] = []
    i = start
    while i < len(parts):
        end = i + 1
        if type(parts[i]) is AssistantTurn:
            while end < len(parts) and type(parts[end]) is ToolResult:
                end += 1
        if i != last_user:
            units.append(range(i, end))
        i = end
    return units


def without_units(request: GenerationRequest, units: Sequence[range]) -> GenerationRequest:
    """`request` with the parts of `units` left out."""
    dropped = {i for unit in units for i in unit}
    parts = tuple(p for i, p in enumerate(request.parts) if i not in dropped)
    return dataclasses.replace(request, parts=parts)


def fit_to_context(
    request: GenerationRequest,
    render: Callable[[GenerationRequest], list[int]],
    max_model_len: int,
    abandoned: Callable[[], bool] = lambda: False,
) -> tuple[GenerationRequest, list[int]] | None:
    """The request with the fewest oldest units dropped whose prompt (`render`) leaves the
    answer its room, and that prompt; None when dropping every droppable unit is not enough
    (or there is none). `abandoned()` is asked between renders (the client left)."""
    units = droppable_units(request.parts)
    need = answer_room(request, max_model_len)

    def attempt(count: int) -> tuple[GenerationRequest, list[int]] | None:
        shorter = without_units(request, units[:count])
        prompt = render(shorter)
        return (shorter, prompt) if max_model_len - len(prompt) >= need else None

    if not units:
        return None
    best = attempt(len(units))
    if best is None:
        return None
    low, high = 0, len(units)  # `high` units dropped fit; `low` did not (the caller's render)
    while high - low > 1:
        if abandoned():
            break
        middle = (low + high) // 2
        fitted = attempt(middle)
        if fitted is None:
            low = middle
        else:
            best, high = fitted, middle
    return best
