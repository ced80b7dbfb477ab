"""Held-out tool use as served: `python -m training.evaluate_served [--weights DIR]`.

`evaluate.py --tools` measures the raw model. Clients get something else: the real server, whose
grammar under `tool_choice: "auto"` lets a call address only a declared function with arguments
matching its schema. So the model need not spell a tool's name: what matters is whether it
decides to call when a declared tool fits (and answers when none does), which declared tool it
prefers when there are several, that it answers after a `tool` result, and that the arguments
carry the user's values. This module starts the real app in front of the real engine (the
demo-model engine options the CLI and the tests use), sends the held-out requests of
`evaluate.tool_heldout_examples` (names, descriptions, phrasings and some values training never
showed) and the client scenarios of `scenarios.py` over HTTP, and reports:

- call decision: called when a tool fits, answered otherwise (no fit, or a result is in);
- right tool among several: of the requests with 2+ declared tools where one fits, those
  whose call named it;
- answers after a tool result: a `tool` result ends the prompt and the reply is an answer;
- arguments: the call carried the value the user's text holds (exactly the expected JSON, or
  at least every string value of it);
- well formed: HTTP 200, and either one call of a declared tool whose arguments are a JSON
  object matching its schema, or non-empty content without Harmony markers;
- undeclared calls: must be 0 (the grammar makes them impossible);

then, without tools, the everyday prompts of `everyday.py` (small arithmetic exact, the README's
examples, short writing on topic), and the engine's speed: completion tokens per second of the
held-out pass (8 requests at a time) and of the everyday prompts (one at a time).

`--weights OLD NEW` measures each weights directory in its own process, one after the other on
the same machine, and prints the rows side by side (how training/RUNS.md's tables are made).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.evaluate import matches_schema, tool_category, tool_heldout_examples
from training.scenarios import SCENARIOS

TEST_DATE = "2026-01-15"
DEMO_MODEL = "gpt-oss-demo"


@dataclass
class Outcome:
    """What the server returned for one request."""

    status: int
    calls: list[tuple[str, str]] = field(default_factory=list)  # (client name, arguments)
    content: str | None = None
    finish_reason: str | None = None
    error: str = ""
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass
class ServedReport:
    temperature: float
    total: int = 0
    well_formed: int = 0
    decision: list[int] = field(default_factory=lambda: [0, 0])  # right, of
    right_tool: list[int] = field(default_factory=lambda: [0, 0])  # all call requests
    right_among_several: list[int] = field(default_factory=lambda: [0, 0])
    no_fit_answered: list[int] = field(default_factory=lambda: [0, 0])
    answers_after_result: list[int] = field(default_factory=lambda: [0, 0])
    exact_arguments: list[int] = field(default_factory=lambda: [0, 0])
    values_in_arguments: list[int] = field(default_factory=lambda: [0, 0])
    undeclared_calls: int = 0
    failures: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    seconds: float = 0.0  # wall time of the whole pass (8 requests at a time)

    def rows(self) -> list[tuple[str, str]]:
        def pct(pair: list[int]) -> str:
            right, of = pair
            return f"{right}/{of} ({100 * right / of:.0f}%)" if of else "0/0"

        return [
            ("well formed", pct([self.well_formed, self.total])),
            ("call decision (call iff a tool fits)", pct(self.decision)),
            ("right tool (one fits)", pct(self.right_tool)),
            ("right tool among 2+ declared", pct(self.right_among_several)),
            ("answers when no tool fits", pct(self.no_fit_answered)),
            ("answers after a tool result", pct(self.answers_after_result)),
            ("arguments exactly as expected", pct(self.exact_arguments)),
            ("user's values in the arguments", pct(self.values_in_arguments)),
            ("undeclared calls", str(self.undeclared_calls)),
        ]

    def summary(self) -> str:
        return f"T={self.temperature}: " + "; ".join(f"{k} {v}" for k, v in self.rows())


def _model_names(request: dict[str, Any]) -> Any:
    from proxy.api.chat_request import chat_prompt
    from proxy.api.chat_schema import ChatCompletionRequest
    from proxy.core.conversation import SystemDefaults

    parsed = ChatCompletionRequest.model_validate({"model": DEMO_MODEL, **request})
    return chat_prompt(parsed, SystemDefaults())[1], {
        t.function.name: t.function.parameters or {} for t in parsed.tools or [] if t.function
    }


def _well_formed(outcome: Outcome, schemas: dict[str, Any]) -> bool:
    if outcome.status != 200:
        return False
    if outcome.calls:
        if len(outcome.calls) != 1 or outcome.finish_reason != "tool_calls":
            return False
        name, arguments = outcome.calls[0]
        try:
            value = json.loads(arguments)
        except ValueError:
            return False
        return name in schemas and isinstance(value, dict) and matches_schema(schemas[name], value)
    content = outcome.content or ""
    return bool(content.strip()) and "<|" not in content


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


async def post_chat(
    client: Any, request: dict[str, Any], temperature: float, seed: int, model: str
) -> Outcome:
    body = {
        **request,
        "model": model,
        "temperature": temperature,
        "seed": seed,
        "max_tokens": 300,
    }
    started = time.monotonic()
    try:
        response = await client.post("/v1/chat/completions", json=body, timeout=600)
    except Exception as exc:  # a transport failure counts as not well formed
        return Outcome(0, error=repr(exc))
    if response.status_code != 200:
        return Outcome(response.status_code, error=response.text[:300])
    answer = response.json()
    choice = answer["choices"][0]
    message = choice["message"]
    calls = [
        (c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []
    ]
    return Outcome(
        200,
        calls,
        message.get("content"),
        choice.get("finish_reason"),
        completion_tokens=(answer.get("usage") or {}).get("completion_tokens", 0),
        seconds=time.monotonic() - started,
    )


async def evaluate_served(
    base_url: str,
    count: int = 150,
    temperature: float = 0.0,
    seed: int = 0,
    concurrency: int = 8,
    model: str = DEMO_MODEL,
) -> ServedReport:
    """Send the held-out tool requests to a running server and judge the replies."""
    import httpx

    examples = tool_heldout_examples(count)
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url) as client:

        async def one(request: dict[str, Any]) -> Outcome:
            async with gate:
                return await post_chat(client, request, temperature, seed, model)

        outcomes = await asyncio.gather(*(one(e.request) for e in examples))
    report = ServedReport(temperature, seconds=time.monotonic() - started)
    for example, outcome in zip(examples, outcomes, strict=True):
        report.completion_tokens += outcome.completion_tokens
        names, schemas = _model_names(example.request)
        category = tool_category(example)
        report.total += 1
        formed = _well_formed(outcome, schemas)
        report.well_formed += formed
        report.undeclared_calls += any(name not in schemas for name, _ in outcome.calls)
        called = [names.to_model(name) for name, _ in outcome.calls]
        want_call = category == "call"
        report.decision[1] += 1
        report.decision[0] += bool(called) == want_call
        right = False
        if want_call:
            want = example.expected.removeprefix("call:")
            right = called == [want]
            report.right_tool[1] += 1
            report.right_tool[0] += right
            if len(example.tools) > 1:
                report.right_among_several[1] += 1
                report.right_among_several[0] += right
            expected = _expected_arguments(example)
            report.exact_arguments[1] += 1
            report.values_in_arguments[1] += 1
            if right:
                got = json.loads(outcome.calls[0][1])
                report.exact_arguments[0] += got == expected
                text = json.dumps(got)
                report.values_in_arguments[0] += all(
                    json.dumps(s)[1:-1] in text for s in _strings(expected)
                )
        else:
            right = not called and outcome.status == 200
            pair = report.answers_after_result if category == "result" else report.no_fit_answered
            pair[1] += 1
            pair[0] += right
        if not right or not formed:
            report.failures.append(
                f"{category} want {example.expected} ({example.intent}, tools {example.tools}): "
                f"status {outcome.status} calls {outcome.calls} content {outcome.content!r} "
                f"{outcome.error}"
            )
    return report


def _expected_arguments(example: Any) -> Any:
    from harmony import HarmonyEncodingName, Role, load_harmony_encoding

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    messages = enc.parse_messages_from_completion_tokens(example.completion, Role.ASSISTANT)
    return json.loads("".join(p.text for p in messages[-1].content))


async def scenario_outcomes(
    base_url: str, model: str = DEMO_MODEL
) -> list[tuple[Any, Outcome, list[str]]]:
    """The client scenarios at temperature 0 through the server.

    Each as (scenario, outcome, model-side names of the tools called).
    """
    import httpx

    async with httpx.AsyncClient(base_url=base_url) as client:
        outcomes = await asyncio.gather(
            *(post_chat(client, s.request, 0.0, 0, model) for s in SCENARIOS)
        )
    results = []
    for scenario, outcome in zip(SCENARIOS, outcomes, strict=True):
        names, _ = _model_names(scenario.request)
        results.append((scenario, outcome, [names.to_model(n) for n, _ in outcome.calls]))
    return results


def scenario_passed(scenario: Any, outcome: Outcome, called: list[str]) -> bool:
    """The scenario's expected action, with its values in the arguments or the answer."""
    if outcome.status != 200:
        return False
    if scenario.expected == "final":
        text = outcome.content or ""
        return not called and all(word in text for word in scenario.must_contain)
    if called != [scenario.expected.removeprefix("call:")]:
        return False
    return all(value in outcome.calls[0][1] for value in scenario.must_contain)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pct(pair: list[int]) -> str:
    right, of = pair
    return f"{right}/{of} ({100 * right / of:.0f}%)" if of else "0/0"


async def _measure(base_url: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Every row for the server at `base_url`: scenarios, held-out tool use, everyday, speed."""
    rows = []
    passed = 0
    for scenario, outcome, called in await scenario_outcomes(base_url):
        ok = scenario_passed(scenario, outcome, called)
        passed += ok
        got = f"call {called} {[a for _, a in outcome.calls]}" if called else outcome.content
        print(
            f"scenario {scenario.label}: {'ok' if ok else 'MISS'} (want "
            f"{scenario.expected}; got {got!r})",
            flush=True,
        )
    rows.append(("client scenarios (scenarios.py)", f"{passed}/{len(SCENARIOS)}"))
    for temperature in [float(t) for t in args.temperatures.split(",")]:
        report = await evaluate_served(base_url, args.count, temperature, args.seed)
        if args.verbose:
            for failure in report.failures:
                print("- " + failure)
        print(f"held-out (served, grammar on) {report.summary()} [{report.seconds:.0f}s]")
        suffix = "" if temperature == 0 else f", T={temperature}"
        rows.extend((label + suffix, value) for label, value in report.rows())
        speed = report.completion_tokens / report.seconds if report.seconds else 0.0
        rows.append((f"tokens/s, 8 requests at a time (held-out pass{suffix})", f"{speed:.1f}"))
    from training.everyday import evaluate_everyday

    everyday, single, misses = await evaluate_everyday(base_url)
    if args.verbose:
        for miss in misses:
            print("- " + miss)
    rows.extend((label, _pct(pair)) for label, pair in everyday.items())
    rows.append(("tokens/s, one request at a time (everyday prompts)", f"{single:.1f}"))
    for label, value in rows:
        print(f"{label}: {value}", flush=True)
    return rows


def _compare(args: argparse.Namespace) -> None:
    """Each weights directory measured in its own process, one after the other; one table."""
    import subprocess
    import sys

    columns = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, weights in enumerate(args.weights):
            out = Path(tmp) / f"{i}.json"
            command = [sys.executable, "-m", "training.evaluate_served", "--weights", weights]
            command += ["--json", str(out), "--count", str(args.count)]
            command += ["--temperatures", args.temperatures, "--seed", str(args.seed)]
            subprocess.run(command + (["--verbose"] if args.verbose else []), check=True)
            columns.append(dict(json.loads(out.read_text())))
    labels = list(columns[0])
    print("| served, T=0, grammar on | " + " | ".join(args.weights) + " |")
    print("|---" * (len(args.weights) + 1) + "|")
    for label in labels:
        print(f"| {label} | " + " | ".join(c.get(label, "-") for c in columns) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights",
        nargs="*",
        default=[],
        help="directories with compact.safetensors and compact.json (default: the committed "
        "ones); with several, each is measured in turn and the rows printed side by side",
    )
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--temperatures", default="0", help="comma-separated, e.g. 0,0.7")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print every failure")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    if len(args.weights) > 1:
        _compare(args)
        return

    import uvicorn

    from proxy.backends.vllm_engine import EngineOptions, VllmBackend
    from proxy.demo_model import DEMO_MODEL_NAME
    from proxy.demo_model.loader import WEIGHTS_DIR, ensure_demo_model
    from proxy.server.app import create_app
    from proxy.server.settings import ProxyConfig

    weights = Path(args.weights[0]) if args.weights else WEIGHTS_DIR
    model = ensure_demo_model(
        Path(tempfile.gettempdir()) / "harmony-proxy-eval-cache", weights_dir=weights
    )
    # The options `harmony-proxy serve` and the test fixtures use for the demo model.
    backend = VllmBackend(
        EngineOptions(
            model=str(model),
            served_model_name=DEMO_MODEL_NAME,
            max_model_len=2048,
            cpu_kvcache_space_gib=1,
            json_without_whitespace=True,
            seed=0,
        )
    )
    config = ProxyConfig(served_model_names=(DEMO_MODEL_NAME,), conversation_date=TEST_DATE)
    app = create_app(config, backend)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"

    async def run() -> None:
        import httpx

        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=base_url) as client:
            while True:
                await asyncio.sleep(1)
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if task.done():
                    task.result()
        print(f"weights {weights}: ready in {time.monotonic() - started:.0f}s", flush=True)
        try:
            rows = await _measure(base_url, args)
            if args.json:
                Path(args.json).write_text(json.dumps(rows))
        finally:
            server.should_exit = True
            await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
