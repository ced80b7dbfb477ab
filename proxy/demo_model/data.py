"""Synthetic Harmony conversations that teach the demo model the gpt-oss output format.

Every example is rendered with our `harmony` library, exactly as the proxy renders requests: the
prompt is `render_conversation_for_completion(prefix, ASSISTANT)` and the completion is the
concatenation of the rendered assistant messages (without the prompt's `<|start|>assistant`, the
last `<|end|>` of a final answer turned into `<|return|>`). Rendering the completion separately
matters: `render_conversation_for_training` drops earlier analysis, so its prefix would not match
what the proxy sends at serving time.

The intents cover what a smoke test of the proxy exercises: greetings, arithmetic, facts, function
calls with JSON arguments (weather, search, calculator), answering from a tool result, the three
reasoning efforts (longer analysis for higher effort), preambles on the commentary channel (when
the developer asks for them) and copying ordinary words from the user. The held-out split uses
user phrasings, cities and countries that training never shows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    load_harmony_encoding,
)
from proxy.demo_model.words import WORDS

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

PREAMBLE_INSTRUCTION = (
    "Before calling a tool, tell the user in one short sentence what you will do."
)
INSTRUCTIONS = (
    "You are a helpful assistant.",
    "Be concise.",
    "Answer in a friendly tone.",
    "You are a cheerful helper for a travel website.",
    "Keep answers short and clear.",
    "You help users with everyday questions.",
)
IDENTITIES = ("You are a small demo model.", "You are a helpful assistant built for testing.")

TRAIN_CITIES = (
    "Paris",
    "London",
    "Berlin",
    "Madrid",
    "Rome",
    "Tokyo",
    "Sydney",
    "Toronto",
    "Chicago",
    "Boston",
    "Seattle",
    "Denver",
    "Miami",
    "Dublin",
    "Vienna",
    "Prague",
    "Oslo",
    "Stockholm",
    "Amsterdam",
    "Brussels",
    "Lisbon",
    "Athens",
    "Cairo",
    "Mumbai",
    "Delhi",
    "Seoul",
    "Beijing",
    "Shanghai",
    "Bangkok",
    "Singapore",
    "Moscow",
    "Warsaw",
    "Zurich",
    "Geneva",
    "Munich",
    "Barcelona",
    "Milan",
    "Naples",
    "Lima",
    "Bogota",
    "Santiago",
    "Havana",
    "Nairobi",
    "Lagos",
    "Austin",
    "Phoenix",
    "Houston",
    "Dallas",
    "Atlanta",
    "Portland",
    "Vancouver",
    "Montreal",
)
HELDOUT_CITIES = ("Dubai", "Helsinki", "Budapest", "Manila", "Quito", "Osaka", "Hamburg", "Perth")

TRAIN_COUNTRIES = {
    "France": "Paris",
    "Germany": "Berlin",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "India": "New Delhi",
    "China": "Beijing",
    "Russia": "Moscow",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Portugal": "Lisbon",
    "Greece": "Athens",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Cuba": "Havana",
    "Chile": "Santiago",
    "Thailand": "Bangkok",
    "Brazil": "Brasilia",
    "Mexico": "Mexico City",
    "Australia": "Canberra",
    "Belgium": "Brussels",
    "Denmark": "Copenhagen",
    "Turkey": "Ankara",
}
HELDOUT_COUNTRIES = {
    "Finland": "Helsinki",
    "Hungary": "Budapest",
    "Ecuador": "Quito",
    "Argentina": "Buenos Aires",
    "Vietnam": "Hanoi",
}

FACTS = (
    ("How many days are in a week?", "There are seven days in a week.", "a week has seven days"),
    ("How many legs does a spider have?", "A spider has eight legs.", "spiders have eight legs"),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day.", "the sky is blue"),
    ("How many hours are in a day?", "There are twenty four hours in a day.", "a day has 24 hours"),
    ("What is the largest ocean?", "The Pacific Ocean is the largest ocean.", "it is the Pacific"),
    ("What do bees make?", "Bees make honey.", "bees make honey"),
    (
        "How many months are in a year?",
        "There are twelve months in a year.",
        "a year has 12 months",
    ),
    ("What is water made of?", "Water is made of hydrogen and oxygen.", "water is H2O"),
    (
        "Which planet is closest to the sun?",
        "Mercury is the planet closest to the sun.",
        "Mercury is closest",
    ),
    (
        "What is the freezing point of water?",
        "Water freezes at 0 degrees celsius.",
        "water freezes at 0 C",
    ),
)

# User phrasings: index 0.. are for training; the HELDOUT_* ones never appear in training.
GREETINGS = (
    "Hello!",
    "Hi there.",
    "Good morning!",
    "Hey, how are you?",
    "Hi!",
    "Hello, assistant.",
    "Good evening!",
    "Hey there!",
    "Hi, nice to meet you.",
    "Hello, how is it going?",
    "Hey!",
    "Morning!",
    "Hi, can you help me?",
    "Hello there, friend.",
    "Good day!",
    "Hiya!",
)
HELDOUT_GREETINGS = ("Greetings, assistant!", "Yo, what's up?", "Howdy!", "Good afternoon to you.")
ARITH = (
    "What is {e}?",
    "Calculate {e}.",
    "How much is {e}?",
    "Please compute {e}.",
    "What do you get for {e}?",
    "Can you tell me {e}?",
    "Solve {e}.",
    "{e} is what?",
    "I need the result of {e}.",
    "Help me with {e}, please.",
    "What's {e}?",
    "Compute {e} for me.",
)
HELDOUT_ARITH = ("Could you work out {e} for me?", "Quick question: {e} equals what?")
CAPITAL = (
    "What is the capital of {c}?",
    "Which city is the capital of {c}?",
    "Name the capital of {c}.",
    "What's the capital city of {c}?",
    "I forgot the capital of {c}. What is it?",
    "Capital of {c}?",
    "Which city is {c}'s capital?",
)
HELDOUT_CAPITAL = ("Tell me the capital of {c}, please.", "Do you know the capital of {c}?")
WEATHER = (
    "What's the weather in {city}?",
    "Is it raining in {city}?",
    "How warm is it in {city} today?",
    "What is the weather like in {city}?",
    "Tell me the weather for {city}.",
    "Is it sunny in {city}?",
    "Do I need an umbrella in {city} today?",
    "How hot is it in {city}?",
    "I am flying to {city}. What is the weather there?",
    "Weather in {city}, please.",
    "What temperature is it in {city} now?",
)
HELDOUT_WEATHER = (
    "Any idea if it's cold in {city} right now?",
    "Could you check the weather over in {city}?",
)
UNIT_SUFFIX = (" Please answer in {u}.", " Use {u}.", " In {u}, please.")
SEARCH = (
    "Search the web for {t}.",
    "Look up {t}.",
    "Find information about {t}.",
    "Can you search for {t}?",
    "Please search {t} online.",
    "I want to learn about {t}. Please search.",
    "Find me articles on {t}.",
    "Could you look up {t} on the web?",
    "Search: {t}",
    "What can you find about {t}?",
    "Do a web search for {t}.",
)
HELDOUT_SEARCH = (
    "I would like to read about {t}, can you search?",
    "What does the internet say about {t}?",
)
REPEAT = (
    "Repeat after me: {t}",
    "Say exactly this: {t}",
    "Please echo: {t}",
    "Repeat this text: {t}",
    "Copy these words: {t}",
    "Say it back to me: {t}",
    "Repeat the following: {t}",
    "Just repeat: {t}",
)
HELDOUT_REPEAT = ("Can you say back the phrase: {t}", "Echo the following words: {t}")

CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "clear")


@dataclass
class Example:
    """One rendered conversation: the prompt tokens, the target completion and what it means."""

    prompt: list[int]
    completion: list[int]
    intent: str
    tools: tuple[str, ...]
    expected: str  # "final" or "call:<tool name>"
    # Token spans [start, end) of user text inside `prompt` (for UNK dropout in training).
    user_spans: list[tuple[int, int]] = field(default_factory=list)


def _sentences(parts: list[str], effort: ReasoningEffort) -> str:
    """Higher reasoning effort: a longer analysis (1, 2 or 3 sentences)."""
    count = {ReasoningEffort.LOW: 1, ReasoningEffort.MEDIUM: 2, ReasoningEffort.HIGH: 3}[effort]
    return " ".join(parts[:count])


def _args_json(args: dict[str, Any]) -> str:
    return json.dumps(args, separators=(",", ":"))


class _Builder:
    """Draws one random scenario and renders it (a fresh builder per split and seed)."""

    def __init__(self, seed: int, heldout: bool) -> None:
        self.rng = random.Random(seed)
        self.heldout = heldout
        self.enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
        self.user_token = self.enc.encode("user")[0]

    # -- value pickers -------------------------------------------------------------------
    def _pick(self, train: tuple[str, ...], held: tuple[str, ...]) -> str:
        return self.rng.choice(held if self.heldout else train)

    def _city(self) -> str:
        if self.heldout and self.rng.random() < 0.4:
            return self.rng.choice(HELDOUT_CITIES)
        return self.rng.choice(TRAIN_CITIES)

    def _words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    # -- scenario ------------------------------------------------------------------------
    def build(self) -> Example:
        rng = self.rng
        effort = rng.choice(list(ReasoningEffort))
        tools = tuple(name for name in TOOLS if rng.random() < 0.45)
        intent = rng.choices(
            ["greeting", "arithmetic", "capital", "fact", "weather", "search", "repeat"],
            weights=[1.0, 1.3, 1.0, 0.7, 1.6, 1.3, 1.4],
        )[0]
        wanted = {"arithmetic": "calculator", "weather": "get_weather", "search": "search"}
        if intent in wanted and rng.random() < 0.5 and wanted[intent] not in tools:
            tools = tuple(n for n in TOOLS if n in tools or n == wanted[intent])
        preamble = bool(tools) and rng.random() < 0.3
        user_text, plan = getattr(self, f"_intent_{intent}")(effort)
        tool = wanted.get(intent)
        uses_tool = tool is not None and tool in tools
        with_result = uses_tool and rng.random() < 0.35

        prefix = [Message.from_role_and_content(Role.SYSTEM, self._system(effort))]
        developer = self._developer(tools, preamble)
        if developer is not None:
            prefix.append(Message.from_role_and_content(Role.DEVELOPER, developer))
        if rng.random() < 0.2:
            prefix.extend(self._history())
        prefix.append(Message.from_role_and_content(Role.USER, user_text))

        analysis = Message.from_role_and_content(Role.ASSISTANT, plan["analysis"]).with_channel(
            "analysis"
        )
        if uses_tool:
            call = (
                Message.from_role_and_content(Role.ASSISTANT, _args_json(plan["args"]))
                .with_channel("commentary")
                .with_recipient(f"functions.{tool}")
                .with_content_type("<|constrain|>json")
            )
            turn = [analysis]
            if preamble:
                turn.append(
                    Message.from_role_and_content(Role.ASSISTANT, plan["preamble"]).with_channel(
                        "commentary"
                    )
                )
            turn.append(call)
            if with_result:
                # The client may or may not send the earlier reasoning back.
                prefix.extend(turn if rng.random() < 0.5 else turn[1:])
                prefix.append(
                    Message.from_author_and_content(
                        Author.new(Role.TOOL, f"functions.{tool}"), plan["result"]
                    )
                    .with_channel("commentary")
                    .with_recipient("assistant")
                )
                completion = [
                    Message.from_role_and_content(
                        Role.ASSISTANT, plan["result_analysis"]
                    ).with_channel("analysis"),
                    Message.from_role_and_content(
                        Role.ASSISTANT, plan["result_final"]
                    ).with_channel("final"),
                ]
                expected = "final"
            else:
                completion, expected = turn, f"call:{tool}"
        else:
            final = plan["final"] if tool is None else plan["no_tool_final"]
            completion = [
                analysis
                if tool is None
                else Message.from_role_and_content(
                    Role.ASSISTANT, plan["no_tool_analysis"]
                ).with_channel("analysis"),
                Message.from_role_and_content(Role.ASSISTANT, final).with_channel("final"),
            ]
            expected = "final"
        prompt = self.enc.render_conversation_for_completion(
            Conversation.from_messages(prefix), Role.ASSISTANT
        )
        return Example(
            prompt=list(prompt),
            completion=self._render_completion(completion),
            intent=intent + ("+result" if with_result else ""),
            tools=tools,
            expected=expected,
            user_spans=self._user_spans(prompt),
        )

    def _system(self, effort: ReasoningEffort) -> SystemContent:
        content = SystemContent.new().with_reasoning_effort(effort)
        if self.rng.random() < 0.7:
            day = f"2025-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
            content = content.with_conversation_start_date(day)
        if self.rng.random() < 0.1:
            content = content.with_model_identity(self.rng.choice(IDENTITIES))
        return content

    def _developer(self, tools: tuple[str, ...], preamble: bool) -> DeveloperContent | None:
        lines = []
        if self.rng.random() < 0.4:
            lines.append(self.rng.choice(INSTRUCTIONS))
        if preamble:
            lines.append(PREAMBLE_INSTRUCTION)
        if not lines and not tools:
            return None
        content = DeveloperContent.new()
        if lines:
            content = content.with_instructions("\n".join(lines))
        if tools:
            content = content.with_function_tools(
                [
                    ToolDescription.new(
                        n, TOOLS[n]["description"], parameters=TOOLS[n]["parameters"]
                    )
                    for n in tools
                ]
            )
        return content

    def _history(self) -> list[Message]:
        """An earlier, finished exchange (its analysis dropped, as the proxy renders history)."""
        effort = ReasoningEffort.LOW
        kind = self.rng.choice(["greeting", "capital", "repeat"])
        user_text, plan = getattr(self, f"_intent_{kind}")(effort)
        return [
            Message.from_role_and_content(Role.USER, user_text),
            Message.from_role_and_content(Role.ASSISTANT, plan["final"]).with_channel("final"),
        ]

    # -- intents: each returns the user text and the assistant's plan --------------------
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

    def _intent_arithmetic(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        a, b = self.rng.randint(1, 99), self.rng.randint(1, 99)
        op = self.rng.choice(["+", "-", "*"])
        expr = f"{a} {op} {b}"
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return self._pick(ARITH, HELDOUT_ARITH).format(e=expr), {
            "analysis": _sentences(
                [
                    f"The user wants {expr}.",
                    "I will use the calculator tool.",
                    "It gives an exact result.",
                ],
                effort,
            ),
            "args": {"expression": expr},
            "preamble": "Let me calculate that.",
            "result": _args_json({"result": value}),
            "result_analysis": _sentences(
                [f"The calculator returned {value}.", f"So {expr} = {value}.", "I can answer now."],
                effort,
            ),
            "result_final": f"{expr} = {value}.",
            "no_tool_analysis": _sentences(
                [f"The user wants {expr}.", f"{expr} = {value}.", "I will give the result."], effort
            ),
            "no_tool_final": f"{expr} = {value}.",
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

    def _intent_weather(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        city = self._city()
        text = self._pick(WEATHER, HELDOUT_WEATHER).format(city=city)
        args: dict[str, Any] = {"location": city}
        if self.rng.random() < 0.35:
            unit = self.rng.choice(["celsius", "fahrenheit"])
            text += self.rng.choice(UNIT_SUFFIX).format(u=unit)
            args["unit"] = unit
        unit = args.get("unit", "celsius")
        temp = self.rng.randint(-5, 35) if unit == "celsius" else self.rng.randint(25, 95)
        cond = self.rng.choice(CONDITIONS)
        return text, {
            "analysis": _sentences(
                [
                    f"The user asks about the weather in {city}.",
                    "I will call get_weather.",
                    "The tool gives current conditions.",
                ],
                effort,
            ),
            "args": args,
            "preamble": f"Let me check the weather in {city}.",
            "result": _args_json(
                {"location": city, "temperature": temp, "unit": unit, "condition": cond}
            ),
            "result_analysis": _sentences(
                [
                    f"The tool says it is {temp} degrees and {cond}.",
                    f"I will tell the user about {city}.",
                    "I should mention the unit.",
                ],
                effort,
            ),
            "result_final": f"It is {temp} degrees {unit} and {cond} in {city} right now.",
            "no_tool_analysis": _sentences(
                [
                    f"The user asks about the weather in {city}.",
                    "I have no weather tool.",
                    "I should say I cannot check it.",
                ],
                effort,
            ),
            "no_tool_final": f"I cannot check the weather right now, but I hope it is nice in "
            f"{city}.",
        }

    def _intent_search(self, effort: ReasoningEffort) -> tuple[str, dict[str, Any]]:
        topic = self._words(1, 3)
        snippet = self._words(3, 7)
        return self._pick(SEARCH, HELDOUT_SEARCH).format(t=topic), {
            "analysis": _sentences(
                [
                    f"The user wants information about {topic}.",
                    "I will call search.",
                    "Then I can summarize.",
                ],
                effort,
            ),
            "args": {"query": topic},
            "preamble": f"I will search for {topic}.",
            "result": _args_json({"results": [{"title": topic, "snippet": snippet}]}),
            "result_analysis": _sentences(
                [
                    "The search returned a result.",
                    "I will share the snippet.",
                    "I should keep it short.",
                ],
                effort,
            ),
            "result_final": f"Here is what I found about {topic}: {snippet}.",
            "no_tool_analysis": _sentences(
                [
                    f"The user wants information about {topic}.",
                    "I cannot search the web.",
                    "I will say so politely.",
                ],
                effort,
            ),
            "no_tool_final": f"I cannot search the web, but I can tell you what I know about "
            f"{topic}.",
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

    # -- rendering -----------------------------------------------------------------------
    def _render_completion(self, messages: list[Message]) -> list[int]:
        tokens: list[int] = []
        for message in messages:
            tokens.extend(self.enc.render(message))
        assert tokens[:2] == [START, self.enc.encode("assistant")[0]]
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


def generate_examples(count: int, seed: int = 0, heldout: bool = False) -> list[Example]:
    """`count` examples from a fixed seed (the same seed always gives the same examples)."""
    builder = _Builder(seed, heldout)
    return [builder.build() for _ in range(count)]


def heldout_examples(count: int = 100, seed: int = 1234) -> list[Example]:
    """Evaluation prompts: unseen phrasings and, partly, unseen cities and countries."""
    return generate_examples(count, seed=seed, heldout=True)
