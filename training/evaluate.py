"""How well the demo model speaks Harmony: `python -m training.evaluate`.

Samples completions for held-out prompts (phrasings, cities and countries training never showed)
on the real engine and judges each one twice:
- parses: the strict Harmony parser accepts the completion. Parsers are lenient, so this alone
  says little (a lone analysis message ending in <|call|> parses);
- well formed: what a client can use. An analysis message, optionally a preamble on the
  commentary channel, then either a final message ending in <|return|>, or a call ending in
  <|call|> to one of the tools the prompt offered, with JSON arguments matching its schema; and
  no special-token text leaked into any message.

With `--tools` it also measures tool use that depends on the request, on the raw model (no
grammar, as with structured tool calls turned off), over held-out tool sets whose names,
descriptions, user phrasings and some values training never showed (`evaluate_tools`): correct
tool when one fits, direct answer when none does, an answer (not another call) after a tool
result, exact arguments, and how many completions address an undeclared name; then it prints
what the model does with the client-shaped scenarios of `scenarios.py` at temperature 0.
`evaluate_served.py` measures the same held-out requests as clients get them: through the real
server, with the grammar on.

The parser is a parameter so the tests can judge with the reference implementation (the oracle)
while this module only depends on our own `harmony`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.backends.base import DEFAULT_STOP_TOKEN_IDS, SamplingConfig
from training.data import CALL, RETURN, Example, heldout_examples

Parse = Callable[[list[int]], Sequence[Any]]


def harmony_parser() -> Parse:
    """Strict parsing with our own `harmony` package."""
    from harmony import HarmonyEncodingName, Role, load_harmony_encoding

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    return lambda tokens: enc.parse_messages_from_completion_tokens(tokens, Role.ASSISTANT)


def matches_schema(schema: dict[str, Any], value: Any) -> bool:
    """The subset of JSON Schema the demo tools use (types, properties, required, enum)."""
    kind = schema.get("type")
    checks = {"object": dict, "string": str, "array": list, "boolean": bool}
    if kind in checks and not isinstance(value, checks[kind]):
        return False
    if kind in ("number", "integer") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if kind == "object":
        properties = schema.get("properties", {})
        if any(key not in value for key in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(matches_schema(properties[k], v) for k, v in value.items() if k in properties)
    return True


@dataclass
class Verdict:
    parsed: bool
    well_formed: bool
    action: str | None  # "final", "call:<tool>" or None when not well formed
    reason: str = ""


def _text(message: Any) -> str:
    return "".join(getattr(part, "text", "") for part in message.content)


def judge(
    completion: list[int], tools: Mapping[str, Any], parse: Parse, declared_only: bool = True
) -> Verdict:
    """Parse and check the structure of one completion (see the module docstring).

    `tools` maps each declared tool's model-side name to its parameters' JSON Schema. With
    `declared_only=False` a call may address any `functions.*` name (its arguments must still be
    a JSON object): the format alone, which is what the raw model must get right when the
    server's grammar keeps undeclared names out.
    """
    try:
        messages = list(parse(completion))
    except Exception as exc:  # the parser's error type differs between implementations
        return Verdict(False, False, None, f"parse error: {exc}")

    def bad(reason: str) -> Verdict:
        return Verdict(True, False, None, reason)

    if not completion or completion[-1] not in (RETURN, CALL):
        return bad("did not stop on <|return|> or <|call|>")
    if len(messages) < 2:
        return bad(f"{len(messages)} message(s)")
    if any(str(m.author.role.value).lower() != "assistant" for m in messages):
        return bad("a message not from the assistant")
    if any("<|" in _text(m) for m in messages):
        return bad("special-token text inside a message")
    first, *middle, last = messages
    if first.channel != "analysis" or first.recipient or not _text(first).strip():
        return bad("does not start with an analysis message")
    if len(middle) > 1 or any(m.channel != "commentary" or m.recipient for m in middle):
        return bad("unexpected messages between analysis and the answer")
    if last.recipient is None:
        if last.channel != "final" or completion[-1] != RETURN:
            return bad("last message is neither a final answer nor a tool call")
        return Verdict(True, True, "final")
    name = last.recipient.removeprefix("functions.")
    if not last.recipient.startswith("functions.") or (declared_only and name not in tools):
        return bad(f"call to a tool that was not offered: {last.recipient}")
    if last.channel != "commentary" or "json" not in (last.content_type or ""):
        return bad("tool call not on commentary with a json content type")
    if completion[-1] != CALL:
        return bad("tool call did not end with <|call|>")
    try:
        arguments = json.loads(_text(last))
    except ValueError:
        return bad("arguments are not JSON")
    if not isinstance(arguments, dict) or not matches_schema(tools.get(name) or {}, arguments):
        return bad(f"arguments do not match the schema: {_text(last)}")
    return Verdict(True, True, f"call:{name}")


@dataclass
class Report:
    total: int
    parsed: int
    well_formed: int
    expected_action: int
    completion_tokens: int
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)  # (reason, completion text)
    # Well formed but for calling a name the prompt did not declare (what the grammar prevents).
    undeclared: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"parsed {self.parsed}/{self.total}, well formed {self.well_formed}/{self.total} "
            f"(and {self.undeclared} more but for an undeclared name), "
            f"expected action {self.expected_action}/{self.total}; "
            f"{self.completion_tokens} tokens in {self.seconds:.1f} s "
            f"({self.tokens_per_second:.0f} tokens/s)"
        )


async def sample(
    backend: Any, examples: list[Example], temperature: float, seed: int, max_tokens: int = 256
) -> tuple[list[list[int]], float]:
    """One completion per example, all requests in flight at once (the engine batches them)."""

    async def one(i: int, example: Example) -> list[int]:
        config = SamplingConfig(
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed + i,
            stop_token_ids=DEFAULT_STOP_TOKEN_IDS,
        )
        tokens: list[int] = []
        async for chunk in backend.generate(example.prompt, config, f"eval-{seed}-{i}"):
            tokens.extend(chunk.token_ids)
        return tokens

    started = time.monotonic()
    completions = await asyncio.gather(*(one(i, ex) for i, ex in enumerate(examples)))
    return list(completions), time.monotonic() - started


async def evaluate(
    backend: Any,
    count: int = 100,
    temperature: float = 0.7,
    seed: int = 0,
    parse: Parse | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> Report:
    """Sample `count` held-out prompts on `backend` and judge every completion."""
    parse = parse or harmony_parser()
    examples = heldout_examples(count)
    completions, seconds = await sample(backend, examples, temperature, seed)
    report = Report(len(examples), 0, 0, 0, sum(map(len, completions)), seconds)
    for example, completion in zip(examples, completions, strict=True):
        verdict = judge(completion, example.schemas, parse)
        report.parsed += verdict.parsed
        report.well_formed += verdict.well_formed
        report.expected_action += verdict.action == example.expected
        if not verdict.well_formed:
            report.undeclared += judge(
                completion, example.schemas, parse, declared_only=False
            ).well_formed
            text = decode(completion) if decode else str(completion)
            report.failures.append((verdict.reason, text))
    return report


# ---------------------------------------------------------------- tool generalisation

_RECIPIENT = re.compile(r"to=(?:functions\.)?([A-Za-z0-9_.\-/]+)")


def called_names(text: str) -> list[str]:
    """Every tool a raw completion addresses (`to=functions.x` in any header), parsed or not."""
    return [m.group(1).removeprefix("functions.") for m in _RECIPIENT.finditer(text)]


def tool_heldout_examples(count: int = 150, seed: int = 4321) -> list[Example]:
    """Held-out prompts that declare tools: a call expected, none fits, or a result to answer.

    Names, descriptions, user phrasings and some values come from the held-out halves of
    `tool_families.py`, so none of them occurs in training.
    """
    examples: list[Example] = []
    for example in heldout_examples(count * 4, seed=seed):
        if example.tools and len(examples) < count:
            examples.append(example)
    return examples


def tool_category(example: Example) -> str:
    """`call` (a declared tool fits), `result` (answer from a tool result) or `nofit`."""
    if example.expected.startswith("call:"):
        return "call"
    return "result" if example.intent.endswith("+result") else "nofit"


@dataclass
class ToolReport:
    """How the model uses declared tools on held-out tool sets (see `evaluate_tools`)."""

    temperature: float
    total: int = 0
    well_formed: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"call": 0, "nofit": 0, "result": 0})
    correct: dict[str, int] = field(default_factory=lambda: {"call": 0, "nofit": 0, "result": 0})
    exact_arguments: int = 0
    undeclared_calls: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (category, want, text)

    def summary(self) -> str:
        def pct(a: int, b: int) -> str:
            return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "0/0"

        c, k = self.correct, self.counts
        return (
            f"T={self.temperature}: well formed {pct(self.well_formed, self.total)}; "
            f"correct tool {pct(c['call'], k['call'])} (exact arguments "
            f"{pct(self.exact_arguments, k['call'])}); correct no-call {pct(c['nofit'], k['nofit'])}; "
            f"answers after a tool result {pct(c['result'], k['result'])}; "
            f"undeclared calls {self.undeclared_calls}"
        )


def _arguments(completion: list[int], parse: Parse) -> Any:
    try:
        return json.loads(_text(list(parse(completion))[-1]))
    except Exception:  # not parseable or not JSON: no arguments to compare
        return None


async def evaluate_tools(
    backend: Any,
    count: int = 150,
    temperature: float = 0.0,
    seed: int = 0,
    parse: Parse | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> ToolReport:
    """Held-out tool generalisation on the raw model (no grammar, as with the flag off).

    - correct tool: a declared tool fits and the model called exactly that one;
    - correct no-call: none fits and the model answered on the final channel;
    - answers after a tool result: the prompt ends with a result and the model answered;
    - undeclared calls: completions addressing a name the request did not declare.
    """
    from harmony import HarmonyEncodingName, load_harmony_encoding

    parse = parse or harmony_parser()
    if decode is None:
        decode = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS).decode
    examples = tool_heldout_examples(count)
    completions, _ = await sample(backend, examples, temperature, seed)
    report = ToolReport(temperature)
    for example, completion in zip(examples, completions, strict=True):
        category = tool_category(example)
        verdict = judge(completion, example.schemas, parse)
        text = decode(completion)
        report.total += 1
        report.counts[category] += 1
        report.well_formed += verdict.well_formed
        right = verdict.action == example.expected
        report.correct[category] += right
        if right and category == "call":
            report.exact_arguments += _arguments(completion, parse) == _arguments(
                example.completion, parse
            )
        if any(name not in example.tools for name in called_names(text)):
            report.undeclared_calls += 1
        if not right:
            report.failures.append((category, example.expected, text))
    return report


async def run_scenarios(backend: Any, max_tokens: int = 256) -> list[tuple[str, str, str]]:
    """The client scenarios at temperature 0 on the raw model: (label, expected, completion)."""
    from harmony import HarmonyEncodingName, load_harmony_encoding
    from training.scenarios import SCENARIOS, render_request

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    examples = []
    for scenario in SCENARIOS:
        prompt, schemas = render_request(scenario.request)
        examples.append(Example(prompt, [], scenario.label, tuple(schemas), scenario.expected))
    completions, _ = await sample(backend, examples, 0.0, 0, max_tokens)
    return [
        (s.label, s.expected, enc.decode(c)) for s, c in zip(SCENARIOS, completions, strict=True)
    ]


def main(argv: list[str] | None = None) -> None:
    from harmony import HarmonyEncodingName, load_harmony_encoding
    from proxy.backends.vllm_engine import EngineOptions, VllmBackend
    from proxy.demo_model.loader import ensure_demo_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the demo)")
    parser.add_argument(
        "--dtype", default="auto", help="engine dtype, e.g. float32 (default: auto)"
    )
    parser.add_argument(
        "--tools",
        action="store_true",
        help="also run the held-out tool evaluation (at --temperature and at 0) and the client "
        "scenarios",
    )
    parser.add_argument("--tool-count", type=int, default=150)
    parser.add_argument("--verbose", action="store_true", help="print every failure")
    args = parser.parse_args(argv)
    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)

    async def run() -> None:
        model = args.model or str(ensure_demo_model())
        backend = VllmBackend(
            EngineOptions(
                model=model,
                max_model_len=2048,
                cpu_kvcache_space_gib=1,
                json_without_whitespace=True,
                dtype=args.dtype,
            )
        )
        await backend.start()
        try:
            report = await evaluate(
                backend, args.count, args.temperature, args.seed, decode=enc.decode
            )
            for reason, text in report.failures:
                print(f"- {reason}\n  {text}")
            print(report.summary(), flush=True)
            if not args.tools:
                return
            for temperature in dict.fromkeys((args.temperature, 0.0)):
                tools = await evaluate_tools(
                    backend, args.tool_count, temperature, args.seed, decode=enc.decode
                )
                if args.verbose:
                    for category, want, text in tools.failures:
                        print(f"- {category}: wanted {want}\n  {text}")
                print("held-out tools " + tools.summary(), flush=True)
            for label, expected, text in await run_scenarios(backend):
                print(f"scenario {label} (want {expected}):\n  {text}", flush=True)
        finally:
            await backend.shutdown()

    asyncio.run(run())


if __name__ == "__main__":
    main()
