"""Synthetic Harmony conversations that teach the demo model the format and real tool use.

Every prompt is built the way the proxy builds a real request: an OpenAI-shaped request dict
(system/developer instructions, user turns, assistant tool calls, `tool` results, `tools[]`,
`reasoning_effort`) goes through `ChatCompletionRequest` and the server's own rendering
(`chat_prompt`) with a `ProxyConfig` (model identity, knowledge cutoff, a pinned date), so
training and serving see the same tokens. The completion is the concatenation of the rendered
assistant messages (without the prompt's `<|start|>assistant`; the last `<|end|>` of a final
answer turned into `<|return|>`).

What the data teaches:
- format: an analysis message (one, two or three sentences for low, medium, high effort), an
  optional preamble on commentary (only when the instructions ask for one), then either a final
  answer or a JSON call on commentary to `functions.<name>`;
- tool use that depends on the request: tools come from `tool_families.py` (declared by
  `tool_declarations.py`) with randomised names,
  descriptions, parameter names and schema styles, one to five at a time. The model calls the
  declared tool that fits the user's request (copying its identifier and parameter names from
  the `namespace functions` block and the value from the user's words), answers directly when no
  declared tool fits, and after a `tool` result answers on the final channel using the result;
- greetings, arithmetic (worked out step by step in the analysis), capitals, simple facts,
  copying words and short writing requests (a few lines on the topic), with or without tools
  around;
- the instruction styles clients send (none, "You are a helpful assistant.", agent
  instructions, a developer message), and a fifth of the tool sets use the fixed legacy `TOOLS`.

The held-out split (`heldout_examples`) uses tool names, descriptions, user phrasings and some
values (cities, tickers, people, countries) that training never shows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harmony import Message, ReasoningEffort, Role
from proxy.api.chat_request import chat_prompt
from proxy.api.chat_schema import ChatCompletionRequest
from proxy.core.conversation import SystemDefaults, load_encoding
from proxy.server.settings import ProxyConfig
from training.phrases import (
    AGENT_INSTRUCTIONS,
    CANNOT_FINALS,
    CAPITAL,
    FACTS,
    GREETINGS,
    HELDOUT_CAPITAL,
    HELDOUT_COUNTRIES,
    HELDOUT_GREETINGS,
    HELDOUT_INSTRUCTIONS,
    HELDOUT_REPEAT,
    HELDOUT_TOPICS,
    HELDOUT_WRITING_ASKS,
    IDENTITIES,
    INSTRUCTIONS,
    LEGACY,
    LEGACY_PARAMS,
    POEM_ASKS,
    POEMS,
    PREAMBLE_INSTRUCTION,
    PROSE,
    PROSE_ASKS,
    REPEAT,
    SIMPLE_INTENTS,
    TOPICS,
    TRAIN_COUNTRIES,
)
from training.tool_declarations import tool_declaration
from training.tool_families import FAMILIES, FAMILY, Call, Family
from training.words import WORDS

START, END, MESSAGE, RETURN, CALL = 200006, 200007, 200008, 200002, 200012

TOOLS: dict[str, dict[str, Any]] = {
    "get_weather": {
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
    "search": {
        "description": "Search the web and return the top results.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for"}},
            "required": ["query"],
        },
    },
    "calculator": {
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "For example 2 * 21"}},
            "required": ["expression"],
        },
    },
}


@dataclass
class Example:
    """One rendered conversation: the prompt tokens, the target completion and what it means."""

    prompt: list[int]
    completion: list[int]
    intent: str  # "<family>", "<family>+result", "<family>-nofit" or a simple intent
    tools: tuple[str, ...]  # model-side identifiers of the declared tools
    expected: str  # "final" or "call:<model-side tool name>"
    # Token spans [start, end) of user text inside `prompt` (for UNK dropout in training).
    user_spans: list[tuple[int, int]] = field(default_factory=list)
    # JSON Schema of each declared tool's parameters, by model-side name.
    schemas: dict[str, Any] = field(default_factory=dict)
    # The OpenAI-shaped request the prompt was rendered from (what a client would send).
    request: dict[str, Any] = field(default_factory=dict)


def _sentences(parts: list[str], effort: ReasoningEffort) -> str:
    """Higher reasoning effort: a longer analysis (1, 2 or 3 sentences)."""
    count = {ReasoningEffort.LOW: 1, ReasoningEffort.MEDIUM: 2, ReasoningEffort.HIGH: 3}[effort]
    return " ".join(parts[:count])


def _decided(restate: str, decision: str, plan: str, check: str, effort: ReasoningEffort) -> str:
    """Analysis of a request about a tool: what is asked, then always whether a declared tool fits.

    The call-or-answer decision is spelled out in every analysis (low effort too), so the message
    header that follows only has to agree with it; more effort adds the plan and a check.
    """
    extra = {ReasoningEffort.LOW: [], ReasoningEffort.MEDIUM: [plan]}.get(effort, [plan, check])
    return " ".join([restate, decision, *extra])


def _args_json(args: dict[str, Any]) -> str:
    return json.dumps(args, separators=(",", ":"))


def _assistant(text: str, channel: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)


class _Builder:
    """Draws one random scenario and renders it (a fresh builder per split and seed)."""

    def __init__(self, seed: int, heldout: bool) -> None:
        self.rng = random.Random(seed)
        self.heldout = heldout
        self.enc = load_encoding()
        self.user_token = self.enc.encode("user")[0]
        self.assistant_token = self.enc.encode("assistant")[0]
        self.calls = 0

    def _pick(self, train: tuple[str, ...], held: tuple[str, ...]) -> str:
        return self.rng.choice(held if self.heldout else train)

    def _words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    # -- the request ---------------------------------------------------------------------
    def _declare(
        self, families: list[Family], legacy: bool
    ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
        """`tools[]` for these families, and each family's parameter names."""
        tools, params = [], {}
        for family in families:
            if legacy and family.key in LEGACY:
                name = LEGACY[family.key]
                tools.append(
                    {
                        "type": "function",
                        "function": {"name": name, **TOOLS[name]},
                    }
                )
                params[family.key] = LEGACY_PARAMS[name]
            else:
                tool, names = tool_declaration(family, self.rng, self.heldout)
                tools.append(tool)
                params[family.key] = names
        return tools, params

    def _instructions(self, preamble: bool) -> dict[str, Any] | None:
        rng = self.rng
        text = None
        roll = rng.random()
        if roll < 0.3:
            text = "You are a helpful assistant."
        elif roll < 0.55:
            text = rng.choice(HELDOUT_INSTRUCTIONS if self.heldout else AGENT_INSTRUCTIONS)
        elif roll < 0.7:
            text = rng.choice(INSTRUCTIONS)
        if preamble:
            text = PREAMBLE_INSTRUCTION if text is None else text + "\n" + PREAMBLE_INSTRUCTION
        if text is None:
            return None
        return {"role": "developer" if rng.random() < 0.2 else "system", "content": text}

    def build(self) -> Example:
        rng = self.rng
        effort = rng.choice(list(ReasoningEffort))
        # Held out, the mix (and so the random stream) is the one the evaluation was fixed with;
        # training works out twice as many sums and adds short writing requests.
        kinds, weights = (
            ["tool", "arithmetic", *SIMPLE_INTENTS],
            [6.0, 2.0, 0.8, 0.7, 0.5, 1.0, 0.8],
        )
        if self.heldout:
            kinds, weights = kinds[:-1], [6.0, 1.0, 0.8, 0.7, 0.5, 1.0]
        intent = rng.choices(kinds, weights=weights)[0]
        family = None
        if intent == "tool":
            family = rng.choice([f for f in FAMILIES if f.key != "calculator"])
        elif intent == "arithmetic":
            family = FAMILY["calculator"]
        others = [f for f in FAMILIES if f is not family]
        declared: list[Family] = rng.sample(others, rng.choice([0, 1, 1, 2, 2, 3, 4]))
        if family is not None and rng.random() < 0.7:
            declared.append(family)
        rng.shuffle(declared)
        fits = family is not None and family in declared
        legacy = rng.random() < 0.2
        tools, params = self._declare(declared, legacy)
        preamble = bool(tools) and rng.random() < 0.25
        messages: list[dict[str, Any]] = []
        instructions = self._instructions(preamble)
        if instructions is not None:
            messages.append(instructions)
        if rng.random() < 0.15:
            messages.extend(self._history())

        if family is None:
            user_text, plan = getattr(self, f"_intent_{intent}")(effort)
            messages.append({"role": "user", "content": user_text})
            completion = [
                _assistant(plan["analysis"], "analysis"),
                _assistant(plan["final"], "final"),
            ]
            request = self._request(messages, tools, effort)
            return self._example(request, completion, intent, "final")

        call = family.make(
            rng, self.heldout, params.get(family.key, [p[0][0] for p in family.params])
        )
        messages.append({"role": "user", "content": call.ask})
        if not fits:
            completion = self._no_fit(family, call, effort)
            request = self._request(messages, tools, effort)
            return self._example(request, completion, f"{family.key}-nofit", "final")

        client_name = tools[declared.index(family)]["function"]["name"]
        request = self._request(messages, tools, effort)
        parsed = ChatCompletionRequest.model_validate(request)
        model_name = chat_prompt(parsed, SystemDefaults())[1].to_model(client_name)
        # The decision comes first, in words and without the tool's name: the reasoning is not
        # constrained, and a name written there could be one the request never declared.
        analysis = _decided(
            call.restate,
            "A declared tool fits this request.",
            "I will call it.",
            "The arguments come from the user's words.",
            effort,
        )
        arguments = _args_json(call.arguments)
        if rng.random() < 0.35:  # the tool loop: the call and its result are in the prompt
            self.calls += 1
            call_id = f"call_{rng.getrandbits(40):010x}"
            assistant: dict[str, Any] = {
                "role": "assistant",
                "content": call.preamble if preamble and rng.random() < 0.7 else None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": client_name, "arguments": arguments},
                    }
                ],
            }
            if rng.random() < 0.4:  # some clients send the reasoning back
                assistant["reasoning"] = analysis
            messages.append(assistant)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": call.result})
            completion = [
                _assistant(
                    _sentences(
                        [
                            "The tool returned the result.",
                            "I will answer the user with it.",
                            "No further call is needed.",
                        ],
                        effort,
                    ),
                    "analysis",
                ),
                _assistant(call.final, "final"),
            ]
            request = self._request(messages, tools, effort)
            return self._example(request, completion, f"{family.key}+result", "final")

        completion = [_assistant(analysis, "analysis")]
        if preamble:
            completion.append(_assistant(call.preamble, "commentary"))
        completion.append(
            Message.from_role_and_content(Role.ASSISTANT, arguments)
            .with_channel("commentary")
            .with_recipient(f"functions.{model_name}")
            .with_content_type("<|constrain|>json")
        )
        return self._example(request, completion, family.key, f"call:{model_name}")

    def _no_fit(self, family: Family, call: Call, effort: ReasoningEffort) -> list[Message]:
        """No declared tool fits: answer directly (arithmetic is simply worked out)."""
        if family.key == "calculator":  # worked out step by step whatever the effort
            analysis = [f"{call.restate} {call.work}", "I will give the result.", "No tool needed."]
            return [
                _assistant(_sentences(analysis, effort), "analysis"),
                _assistant(call.final, "final"),
            ]
        analysis = _decided(
            call.restate,
            f"No declared tool can {family.cannot}.",
            "I will answer directly.",
            "No tool call is needed.",
            effort,
        )
        final = self.rng.choice(CANNOT_FINALS).format(c=family.cannot)
        return [_assistant(analysis, "analysis"), _assistant(final, "final")]

    def _request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], effort: ReasoningEffort
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": "gpt-oss-demo",
            "messages": messages,
            "reasoning_effort": effort.value.lower(),
        }
        if tools:
            request["tools"] = tools
        return request

    def _example(
        self, request: dict[str, Any], completion: list[Message], intent: str, expected: str
    ) -> Example:
        rng = self.rng
        config = ProxyConfig(
            conversation_date=f"{rng.randint(2025, 2027)}-{rng.randint(1, 12):02d}-"
            f"{rng.randint(1, 28):02d}",
            **({"model_identity": rng.choice(IDENTITIES)} if rng.random() < 0.1 else {}),
        )
        parsed = ChatCompletionRequest.model_validate(request)
        prompt, names = chat_prompt(parsed, config.service_settings().system)
        schemas = {
            names.to_model(t.function.name): t.function.parameters or {}
            for t in parsed.tools or []
            if t.function is not None
        }
        return Example(
            prompt=prompt,
            completion=self._render_completion(completion),
            intent=intent,
            tools=tuple(schemas),
            expected=expected,
            user_spans=self._user_spans(prompt),
            schemas=schemas,
            request=request,
        )

    def _history(self) -> list[dict[str, Any]]:
        """An earlier, finished exchange (the proxy drops its reasoning)."""
        kind = self.rng.choice(["greeting", "capital", "repeat"])
        user_text, plan = getattr(self, f"_intent_{kind}")(ReasoningEffort.LOW)
        return [
            {"role": "user", "content": user_text},
            {"role": "assistant", "content": plan["final"]},
        ]

    # -- intents without tools: each returns the user text and the assistant's plan -------
    def _intent_greeting(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        reply = self.rng.choice(
            [
                "Hello! How can I help you today?",
                "Hi there! What can I do for you?",
                "Hello! I am here to help. What do you need?",
                "Hi! How can I assist you?",
            ]
        )
        return self._pick(GREETINGS, HELDOUT_GREETINGS), {
            "analysis": _sentences(
                [
                    "The user greets me.",
                    "I should greet them back and offer help.",
                    "No tool is needed for a greeting.",
                ],
                effort,
            ),
            "final": reply,
        }

    def _intent_capital(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        table = TRAIN_COUNTRIES
        if self.heldout and self.rng.random() < 0.4:
            table = HELDOUT_COUNTRIES
        country = self.rng.choice(sorted(table))
        capital = table[country]
        return self._pick(CAPITAL, HELDOUT_CAPITAL).format(c=country), {
            "analysis": _sentences(
                [
                    f"The user asks for the capital of {country}.",
                    f"The capital of {country} is {capital}.",
                    "This is a simple fact.",
                ],
                effort,
            ),
            "final": f"The capital of {country} is {capital}.",
        }

    def _intent_fact(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        question, answer, note = self.rng.choice(FACTS)
        if self.heldout:
            question = "Quick question: " + question[0].lower() + question[1:]
        return question, {
            "analysis": _sentences(
                [
                    "The user asks a simple fact question.",
                    f"I know that {note}.",
                    "I will answer directly.",
                ],
                effort,
            ),
            "final": answer,
        }

    def _intent_repeat(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        text = self._words(2, 6)
        if self.rng.random() < 0.5:
            text = text[0].upper() + text[1:] + "."
        return self._pick(REPEAT, HELDOUT_REPEAT).format(t=text), {
            "analysis": _sentences(
                [
                    "The user wants me to repeat the text.",
                    "I will copy it exactly.",
                    "No tool is needed.",
                ],
                effort,
            ),
            "final": text,
        }

    def _intent_writing(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        topic = self._pick(TOPICS, HELDOUT_TOPICS)
        poem = self.rng.random() < 0.6
        if self.heldout:
            ask = self.rng.choice(HELDOUT_WRITING_ASKS)
        else:
            ask = self.rng.choice(POEM_ASKS if poem else PROSE_ASKS)
        text = self.rng.choice(POEMS if poem else PROSE)
        kind = "a short poem" if poem else "a short text"
        return ask.format(t=topic), {
            "analysis": _sentences(
                [
                    f"The user wants {kind} about {topic}.",
                    f"I will write a few words about {topic}.",
                    "No tool is needed.",
                ],
                effort,
            ),
            "final": text.format(t=topic, T=topic[0].upper() + topic[1:]),
        }

    # -- rendering -----------------------------------------------------------------------
    def _render_completion(self, messages: list[Message]) -> list[int]:
        tokens: list[int] = []
        for message in messages:
            tokens.extend(self.enc.render(message))
        assert tokens[:2] == [START, self.assistant_token]
        tokens = tokens[2:]
        if tokens[-1] == END:  # a final answer ends the turn
            tokens[-1] = RETURN
        return tokens

    def _user_spans(self, prompt: list[int]) -> list[tuple[int, int]]:
        spans = []
        for i in range(len(prompt) - 2):
            if prompt[i] == START and prompt[i + 1] == self.user_token and prompt[i + 2] == MESSAGE:
                end = prompt.index(END, i + 3)
                spans.append((i + 3, end))
        return spans


def iter_examples(count: int, seed: int = 0, heldout: bool = False) -> Iterator[Example]:
    """`generate_examples` one at a time (training keeps only the tokens of each)."""
    builder = _Builder(seed, heldout)
    for _ in range(count):
        yield builder.build()


def generate_examples(count: int, seed: int = 0, heldout: bool = False) -> list[Example]:
    """`count` examples from a fixed seed (the same seed always gives the same examples)."""
    return list(iter_examples(count, seed, heldout))


def heldout_examples(count: int = 100, seed: int = 1234) -> list[Example]:
    """Evaluation prompts: unseen phrasings and, partly, unseen cities and countries."""
    return generate_examples(count, seed=seed, heldout=True)
