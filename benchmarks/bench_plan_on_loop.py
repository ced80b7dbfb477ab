"""How long the largest requests planned on the event loop hold it (proxy/core/planning.py).

A request that `plans_quickly` and whose schema checks and grammar are cached is planned on the
event loop (`plan_on_loop`), in front of every other stream's next write. Its bound is a size
budget, not a timer, so this measures what the budget allows: requests right at each of its
limits (one long message, many short messages, the most tool declarations, the most past tool
calls, all of them at once), each planned `--repeat` times on a warm cache, with the plan's
wall time printed as p50 / p99 / max. Beside it, in the same run: a plain request's plan, and
the round trip to a worker thread and back (what planning off the loop costs the loop at
least), and the loop lateness at which the server starts merging writes (5 ms,
proxy/core/loop_pressure.py): the largest on-loop plan should stay well under the latter.

    python benchmarks/bench_plan_on_loop.py
    python benchmarks/bench_plan_on_loop.py --repeat 500
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.backends.scripted import ScriptedBackend  # noqa: E402
from proxy.core import gate  # noqa: E402
from proxy.core.conversation import SystemDefaults, load_encoding  # noqa: E402
from proxy.core.planning import (  # noqa: E402
    INLINE_PART_CHARS,
    INLINE_PAST_CALLS,
    INLINE_RENDER_CHARS,
    INLINE_SCHEMA_WEIGHT,
    INLINE_TOOLS,
    plan_on_loop,
    plan_request,
    plans_quickly,
)
from tests.proxy.helpers import neutral  # noqa: E402

LAGGING_MS = 5.0  # loop_pressure: wake-ups this late, five in a row, start the backlog floor


def _tools(count: int, chars: int) -> list[dict[str, Any]]:
    """`count` function tools whose declarations come to about `chars` characters."""
    each = max(1, chars // count - 60)
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "d" * (each // 2),
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "c" * (each // 2)}},
                    "required": ["city"],
                },
            },
        }
        for i in range(count)
    ]


def _prose(chars: int) -> str:
    words = "the engine streams tokens to every client while the server plans requests".split()
    text = " ".join(words[i % len(words)] for i in range(chars // 5))
    return text[:chars]


def _at_budget(count: int, chars: int) -> list[dict[str, Any]]:
    """The largest `_tools(count, ...)` still planned on the loop."""
    while chars > 0:
        tools = _tools(count, chars)
        request = neutral(
            {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tools": tools}
        )
        if plans_quickly(request, gate.check_request(request, gate.Limits())):
            return tools
        chars -= 20
    return _tools(count, 1)


def _cases() -> dict[str, dict[str, Any]]:
    user = {"role": "user", "content": "Hi"}
    tool_room = INLINE_RENDER_CHARS // INLINE_SCHEMA_WEIGHT
    past = []
    for i in range(INLINE_PAST_CALLS):
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": "tool_0", "arguments": "{}"},
        }
        past.append({"role": "assistant", "tool_calls": [call]})
        past.append({"role": "tool", "tool_call_id": f"c{i}", "content": "ok"})
    many = INLINE_RENDER_CHARS // (INLINE_PART_CHARS + 1) - 2
    return {
        "plain (one short message)": {"messages": [user]},
        "one long message (prose)": {
            "messages": [{"role": "user", "content": _prose(INLINE_RENDER_CHARS - 200)}]
        },
        "one long message ('x x x ...')": {
            "messages": [{"role": "user", "content": "x " * ((INLINE_RENDER_CHARS - 200) // 2)}]
        },
        f"{many} one-word messages": {"messages": [{"role": "user", "content": "x"}] * many},
        "8 tools, at the budget": {"messages": [user], "tools": _at_budget(8, tool_room)},
        f"{INLINE_TOOLS} tools, at the budget": {
            "messages": [user],
            "tools": _at_budget(INLINE_TOOLS, tool_room),
        },
        f"{INLINE_PAST_CALLS} past tool calls": {
            "messages": [user, *past],
            "tools": _tools(1, 200),
        },
    }


def _timed(plan: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds per plan on the loop (all caches warm)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = plan_on_loop(plan)
        times.append((time.perf_counter() - started) * 1000)
        assert result is not None, "a cache missed on a warm run"
    return times


async def _hop_ms(repeat: int) -> list[float]:
    """A round trip to a worker thread and back, as the plan executor makes it."""
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await loop.run_in_executor(None, lambda: None)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"  {name:<34} {statistics.median(ordered):>8.3f} {p99:>8.3f} {ordered[-1]:>8.3f}"
        f" {ordered[-1] / LAGGING_MS:>9.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    load_encoding()
    backend = ScriptedBackend(model_name="m")
    system = SystemDefaults()
    never = threading.Event()
    print(f"plans on the event loop, warm caches, {args.repeat} each (ms):")
    print(f"  {'request':<34} {'p50':>8} {'p99':>8} {'max':>8} {'max/5 ms':>10}")
    for name, fields in _cases().items():
        request = neutral({"model": "m", **fields})
        measured = gate.check_request(request, gate.Limits())
        if not plans_quickly(request, measured):
            print(f"  {name:<34} planned off the loop (past the budget): not measured")
            continue

        def plan(request: Any = request) -> Any:
            return plan_request(
                request,
                backend,
                system,
                enforce_auto_tool_calls=True,
                default_max_tokens=None,
                abandoned=never,
            )

        plan()  # warms the schema, grammar and render caches, as the request's first plan does
        gc.freeze()  # as the server does once started (proxy/server/lifecycle.py)
        print(_row(name, _timed(plan, args.repeat)))
    print(_row("(thread hop and back, no work)", asyncio.run(_hop_ms(args.repeat))))
    print(
        f"\nThe server starts merging writes when its loop wakes {LAGGING_MS:.0f} ms late five "
        "times in a row; the last column is each case's worst plan against that lateness."
    )


if __name__ == "__main__":
    main()
