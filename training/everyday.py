"""Everyday prompts without tools, as served: small arithmetic, the README's examples, writing.

Issue 22 asks the demo model to answer what a newcomer types first: "Hello!", "What is 2 + 3?",
small sums (+ and - of operands below 100, x with one operand below 10) exactly, and short
writing requests on topic. `evaluate_served.py` sends these through the real server next to the
held-out tool requests. The prompts are fixed here, apart from training: the arithmetic uses only
the held-out phrasings of `tool_families.py` with expressions from its own seed, the writing
requests only held-out topics and phrasings of `phrases.py`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from training.phrases import HELDOUT_TOPICS, HELDOUT_WRITING_ASKS
from training.tool_families import HELDOUT_ARITH_ASKS, arithmetic_expression

ARITHMETIC_SEED = 2026


@dataclass(frozen=True)
class Everyday:
    """One prompt, the row it counts in, and what the answer must hold."""

    row: str
    prompt: str
    # Arithmetic: the exact value, which must be the last number of the answer. Otherwise words
    # of which at least one must appear (case-insensitive).
    value: int | None = None
    words: tuple[str, ...] = ()

    def passed(self, content: str | None, called: bool) -> bool:
        text = (content or "").strip()
        if called or not text or "<|" in text:
            return False
        if self.value is not None:
            numbers = re.findall(r"-?\d+", text)
            return bool(numbers) and int(numbers[-1]) == self.value
        return any(word in text.lower() for word in self.words)


def arithmetic_prompts(count: int = 40) -> list[Everyday]:
    """`count` sums, differences and small products in held-out phrasings."""
    rng = random.Random(ARITHMETIC_SEED)
    prompts = []
    for i in range(count):
        expr, value = arithmetic_expression(rng)
        ask = HELDOUT_ARITH_ASKS[i % len(HELDOUT_ARITH_ASKS)]
        prompts.append(Everyday("small arithmetic exact (no tools)", ask.format(e=expr), value))
    return prompts


# The README's examples (its curl "Hello!" and its Python "What is 2 + 3?", chat and Responses).
README = (
    Everyday("README examples", "Hello!", words=("hello", "hi", "help")),
    Everyday("README examples", "What is 2 + 3?", value=5),
)


def writing_prompts() -> list[Everyday]:
    """Every held-out writing phrasing with every held-out topic: on topic if it names it."""
    return [
        Everyday("short writing on topic", ask.format(t=topic), words=(topic.split()[-1],))
        for topic in HELDOUT_TOPICS
        for ask in HELDOUT_WRITING_ASKS
    ]


def everyday_prompts() -> list[Everyday]:
    return [*arithmetic_prompts(), *README, *writing_prompts()]


async def evaluate_everyday(
    base_url: str, model: str = "gpt-oss-demo"
) -> tuple[dict[str, list[int]], float, list[str]]:
    """These prompts one at a time through the server at temperature 0, without tools.

    Returns each row's [right, of], the single-stream decoding speed (completion tokens over the
    requests' summed latency) and the misses.
    """
    import httpx

    from training.evaluate_served import post_chat

    rows: dict[str, list[int]] = {}
    tokens, seconds, misses = 0, 0.0, []
    async with httpx.AsyncClient(base_url=base_url) as client:
        for item in everyday_prompts():
            request = {"messages": [{"role": "user", "content": item.prompt}]}
            outcome = await post_chat(client, request, 0.0, 0, model)
            tokens, seconds = tokens + outcome.completion_tokens, seconds + outcome.seconds
            ok = outcome.status == 200 and item.passed(outcome.content, bool(outcome.calls))
            pair = rows.setdefault(item.row, [0, 0])
            pair[0] += ok
            pair[1] += 1
            if not ok:
                misses.append(f"{item.prompt!r}: {outcome.content!r} {outcome.error}")
    return rows, tokens / seconds if seconds else 0.0, misses
