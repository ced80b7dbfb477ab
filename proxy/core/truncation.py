"""Dropping the oldest turns of a conversation that no longer fits the context (Responses
`truncation: "auto"`).

A request asks for it with `GenerationRequest.truncate`; planning (proxy/core/planning.py) then
takes its prompt from `fit_to_context`. The answer's room is `max_output_tokens` when given,
else a quarter of the context (at most `ANSWER_ROOM_CAP` tokens): a prompt that leaves less is
cut, so that the answer is not cut off at once. What is kept, whatever is dropped:
- the leading instructions and developer messages (the system and developer prompt);
- the latest user message, where it stands: in an agent's tool loop that is the task, followed
  by many rounds of calls and results, and the oldest rounds go first, not the task.
Everything else goes oldest first, in units: a user or developer message alone, or an
assistant turn with the tool results of its calls (by call id, wherever they stand: a result
is never kept without its call, which the render would refuse or pin on another call). The
fewest units are dropped that leave the answer its room. When even dropping all of them does
not, they are all dropped and the prompt keeps what room there is; if there is none, the 400
(`context_length_exceeded`) stands, as without truncation.

Cost, with a hostile 8 MB conversation in mind: lower bounds first (the gate's token count,
which stops once past the context): the kept parts, counted once (past the context: the
gate's 400 at once), then newest unit first, so that units older than one context's worth
are dropped before anything is rendered. Then a bisection over the units that
may fit, each render costing what it keeps (at most about a context); a search that would
render more than once is not done on the event loop (`NotCached` sends it to the planner).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence

from harmony import HarmonyEncoding
from proxy.core import gate
from proxy.core.bounded_cache import NotCached, hits_only
from proxy.core.request import (
    AssistantTurn,
    DeveloperText,
    GenerationRequest,
    Instructions,
    Part,
    ToolResult,
    UserText,
    part_texts,
)

# Without max_output_tokens, the room left for the answer: a quarter of the context, at most this.
ANSWER_ROOM_CAP = 8192

Unit = tuple[int, ...]  # part indexes dropped together


def answer_room(request: GenerationRequest, max_model_len: int) -> int:
    """The tokens a prompt must leave free for the answer before nothing is dropped."""
    if request.sampling.max_tokens is not None:
        return request.sampling.max_tokens
    return max(1, min(max_model_len // 4, ANSWER_ROOM_CAP))


def droppable_units(parts: Sequence[Part]) -> list[Unit]:
    """The units that may be dropped, oldest (by first part) first; see the module docstring."""
    start = 0
    while start < len(parts) and type(parts[start]) in (Instructions, DeveloperText):
        start += 1  # the system and developer prompt
    last_user = max((i for i, p in enumerate(parts) if type(p) is UserText), default=-1)
    # Contiguous first: a part alone, or an assistant turn with the results right after it.
    runs: list[list[int]] = []
    i = start
    while i < len(parts):
        end = i + 1
        if type(parts[i]) is AssistantTurn:
            while end < len(parts) and type(parts[end]) is ToolResult:
                end += 1
        if i != last_user:
            runs.append(list(range(i, end)))
        i = end
    # Then a result that stands apart from its call joins the call's unit (union by call id).
    group = list(range(len(runs)))

    def root(u: int) -> int:
        while group[u] != u:
            group[u] = group[group[u]]
            u = group[u]
        return u

    made_in: dict[str, int] = {}
    for u, run in enumerate(runs):
        for k in run:
            part = parts[k]
            if type(part) is AssistantTurn:
                for call in part.calls:
                    made_in[call.call_id] = u
            elif type(part) is ToolResult and part.call_id in made_in:
                a, b = root(u), root(made_in[part.call_id])
                group[max(a, b)] = min(a, b)
    merged: dict[int, list[int]] = {}
    for u, run in enumerate(runs):
        merged.setdefault(root(u), []).extend(run)
    return [tuple(sorted(indexes)) for _, indexes in sorted(merged.items())]


def without_units(
    request: GenerationRequest, units: Sequence[Collection[int]]
) -> GenerationRequest:
    """`request` with the parts of `units` left out."""
    dropped = {i for unit in units for i in unit}
    parts = tuple(p for i, p in enumerate(request.parts) if i not in dropped)
    return dataclasses.replace(request, parts=parts)


def fit_to_context(
    request: GenerationRequest,
    render: Callable[[GenerationRequest], list[int]],
    max_model_len: int,
    encoding: HarmonyEncoding,
    abandoned: Callable[[], bool] = lambda: False,
) -> tuple[GenerationRequest, list[int]]:
    """The request to plan and its prompt (`render`): `request` itself when it leaves the
    answer its room, else with the fewest oldest units dropped that do (or all of them).
    Raises the gate's 400 when the parts that are always kept surely overflow the context."""
    units = droppable_units(request.parts)
    kept = without_units(request, units)
    need = answer_room(request, max_model_len)
    budget = max_model_len - need
    tools = [text for tool in request.tools for text in (tool.name, tool.description)]
    total = gate.tokens_at_least([*kept.texts(), *tools], encoding, max_model_len)
    if total > max_model_len:
        raise gate.context_exceeded(request, max_model_len)  # what is always kept overflows

    def attempt(count: int) -> tuple[GenerationRequest, list[int], bool]:
        shorter = without_units(request, units[:count]) if count else request
        prompt = render(shorter)
        return shorter, prompt, max_model_len - len(prompt) >= need

    # Newest first, lower bounds: units older than a context's worth cannot be kept.
    first = len(units) if total > budget else 0  # the fewest to drop that the bounds allow
    position = len(units)
    while not first and position > 0:
        position -= 1
        texts = [text for k in units[position] for text in part_texts(request.parts[k])]
        total += gate.tokens_at_least(texts, encoding, budget - total)
        if total > budget:
            first = position + 1
    if first == 0:
        whole = attempt(0)
        if whole[2] or not units:
            return whole[0], whole[1]
    if hits_only():
        raise NotCached  # a search: renders more than once, so not on the event loop
    shortest = attempt(len(units))
    if not shortest[2]:
        return shortest[0], shortest[1]  # all dropped, and still less than the answer's room
    best = shortest
    low, high = max(0, first - 1), len(units)  # `low` units dropped do not fit, `high` do
    while high - low > 1:
        if abandoned():
            break
        middle = (low + high) // 2
        tried = attempt(middle)
        if tried[2]:
            best, high = tried, middle
        else:
            low = middle
    return best[0], best[1]
