"""How well the demo model speaks Harmony: `python -m proxy.demo_model.evaluate`.

Samples completions for held-out prompts (phrasings, cities and countries training never showed)
on the real engine and judges each one twice:
- parses: the strict Harmony parser accepts the completion. Parsers are lenient, so this alone
  says little (a lone analysis message ending in <|call|> parses);
- well formed: what a client can use. An analysis message, optionally a preamble on the
  commentary channel, then either a final message ending in <|return|>, or a call ending in
  <|call|> to one of the tools the prompt offered, with JSON arguments matching its schema; and
  no special-token text leaked into any message.

The parser is a parameter so the tests can judge with the reference implementation (the oracle)
while this module only depends on our own `harmony`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy.backends.base import DEFAULT_STOP_TOKEN_IDS, SamplingConfig
from proxy.demo_model.data import CALL, RETURN, TOOLS, Example, heldout_examples

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


def judge(completion: list[int], tools: Sequence[str], parse: Parse) -> Verdict:
    """Parse and check the structure of one completion (see the module docstring)."""
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
    if not last.recipient.startswith("functions.") or name not in tools:
        return bad(f"call to a tool that was not offered: {last.recipient}")
    if last.channel != "commentary" or "json" not in (last.content_type or ""):
        return bad("tool call not on commentary with a json content type")
    if completion[-1] != CALL:
        return bad("tool call did not end with <|call|>")
    try:
        arguments = json.loads(_text(last))
    except ValueError:
        return bad("arguments are not JSON")
    if not matches_schema(TOOLS[name]["parameters"], arguments):
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

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"parsed {self.parsed}/{self.total}, well formed {self.well_formed}/{self.total}, "
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
        verdict = judge(completion, example.tools, parse)
        report.parsed += verdict.parsed
        report.well_formed += verdict.well_formed
        report.expected_action += verdict.action == example.expected
        if not verdict.well_formed:
            text = decode(completion) if decode else str(completion)
            report.failures.append((verdict.reason, text))
    return report


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
    args = parser.parse_args(argv)
    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)

    async def run() -> Report:
        model = args.model or str(ensure_demo_model())
        backend = VllmBackend(
            EngineOptions(
                model=model, max_model_len=2048, cpu_kvcache_space_gib=1, dtype=args.dtype
            )
        )
        await backend.start()
        try:
            return await evaluate(
                backend, args.count, args.temperature, args.seed, decode=enc.decode
            )
        finally:
            await backend.shutdown()

    report = asyncio.run(run())
    for reason, text in report.failures:
        print(f"- {reason}\n  {text}")
    print(report.summary())


if __name__ == "__main__":
    main()
