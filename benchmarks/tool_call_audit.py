"""Count undeclared or malformed tool calls over many sampled completions of a running server.

Sends every prompt below with each tool set, `n` sampled choices at temperature 1, streamed and
not, and checks every `tool_calls` entry that comes back: its name must be one the request
declared, its arguments a JSON object (unless the completion was cut by max_tokens). Prints a
table; the undeclared and malformed columns must read 0.

    harmony-proxy serve --port 8000 &            # the demo model, grammar on (the default)
    python benchmarks/tool_call_audit.py --base-url http://127.0.0.1:8000/v1
    harmony-proxy serve --port 8001 --no-enforce-auto-tool-calls &
    python benchmarks/tool_call_audit.py --base-url http://127.0.0.1:8001/v1
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai


def function(name: str, description: str, **properties: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in properties.items()},
                "required": list(properties),
            },
        },
    }


TOOL_SETS = {
    "unfamiliar": [
        function("crm.contacts/find-by-email", "Find a customer record.", email="string"),
        function("setThermostat", "Set the target temperature of the house.", celsius="number"),
    ],
    "near-miss names": [
        function("get_weather_v2", "Weather report for a place.", place="string"),
        function("calc", "Do maths.", formula="string"),
    ],
    "one tool": [function("lookup_stock_price", "Latest price of a stock.", symbol="string")],
}
PROMPTS = [
    "What's the weather in Paris?",
    "Please calculate 12 * 7.",
    "Search the web for jazz music.",
    "Hello!",
    "Can you run some Python to sort [3, 1, 2]?",
    "Find the customer with the email ann@example.com.",
    "Set the heating to 21 degrees.",
    "What is AAPL trading at?",
]


def audit(client: openai.OpenAI, model: str, tools: list[dict], prompt: str, stream: bool, n: int):
    """(choices, calls, undeclared, malformed) for one request."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "tools": tools,
        "temperature": 1.0,
        "n": n,
        "max_tokens": 200,
    }
    calls: list[tuple[str, str, str]] = []  # (finish, name, arguments)
    if stream:
        parts: dict[tuple[int, int], list[str]] = {}
        finish: dict[int, str] = {}
        for chunk in client.chat.completions.create(**kwargs, stream=True):
            for c in chunk.choices:
                for t in c.delta.tool_calls or []:
                    entry = parts.setdefault((c.index, t.index), ["", ""])
                    entry[0] += t.function.name or ""
                    entry[1] += t.function.arguments or ""
                if c.finish_reason:
                    finish[c.index] = c.finish_reason
        calls = [(finish.get(i, ""), name, args) for (i, _), (name, args) in parts.items()]
    else:
        result = client.chat.completions.create(**kwargs)
        calls = [
            (c.finish_reason, t.function.name, t.function.arguments)
            for c in result.choices
            for t in c.message.tool_calls or []
        ]
    declared = {t["function"]["name"] for t in tools}
    undeclared = sum(1 for _, name, _ in calls if name not in declared)
    malformed = sum(1 for f, _, a in calls if f != "length" and not _is_object(a))
    return n, len(calls), undeclared, malformed


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default=None, help="default: the server's first model")
    parser.add_argument("--n", type=int, default=8, help="sampled choices per request")
    args = parser.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="unused", timeout=600, max_retries=0)
    model = args.model or client.models.list().data[0].id
    print(
        f"{'tool set':<16} {'mode':<10} {'choices':>8} {'calls':>6} {'undeclared':>11} {'malformed':>10}"
    )
    totals = [0, 0, 0, 0]
    for label, tools in TOOL_SETS.items():
        for stream in (False, True):
            with ThreadPoolExecutor(4) as pool:
                rows = list(
                    pool.map(
                        lambda p, t=tools, s=stream: audit(client, model, t, p, s, args.n), PROMPTS
                    )
                )
            sums = [sum(r[k] for r in rows) for k in range(4)]
            totals = [a + b for a, b in zip(totals, sums, strict=True)]
            mode = "stream" if stream else "whole"
            print(f"{label:<16} {mode:<10} {sums[0]:>8} {sums[1]:>6} {sums[2]:>11} {sums[3]:>10}")
    print(f"{'total':<16} {'':<10} {totals[0]:>8} {totals[1]:>6} {totals[2]:>11} {totals[3]:>10}")


if __name__ == "__main__":
    main()
