"""Kinds of tools the demo model learns to use, with randomised names, descriptions and schemas.

A model that only ever saw `get_weather` with one fixed description memorises that text instead
of reading the request. Each family below is a *kind* of tool (weather, stock prices, web search,
...) with many surface forms: names in every style clients use (snake_case, camelCase, PascalCase,
`-`, `.` and `/` separated, which the proxy renders as identifiers), descriptions in the styles
frameworks send (terse, long, the OpenAI Agents SDK's docstring summary, LangChain's whole
docstring with an `Args:` section, none at all), parameter names and JSON Schema styles (plain,
described, Pydantic-derived with titles). Training draws from the `train` halves; the held-out
evaluation draws names, descriptions, user phrasings and some values that training never shows,
so it measures whether the model reads what the request declares. The names, descriptions and
schemas are drawn in training/tool_declarations.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.words import WORDS

CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "clear")
TRAIN_CITIES = (
    "Paris London Berlin Madrid Rome Tokyo Sydney Toronto Chicago Boston Seattle Denver Miami "
    "Dublin Vienna Prague Oslo Stockholm Amsterdam Brussels Lisbon Athens Cairo Mumbai Delhi Seoul "
    "Beijing Shanghai Bangkok Singapore Moscow Warsaw Zurich Geneva Munich Barcelona Milan Naples "
    "Lima Bogota Santiago Havana Nairobi Lagos Austin Phoenix Houston Dallas Atlanta Portland "
    "Vancouver Montreal"
).split()
HELDOUT_CITIES = ("Dubai", "Helsinki", "Budapest", "Manila", "Quito", "Osaka", "Hamburg", "Perth")
TRAIN_TICKERS = "AAPL MSFT GOOG AMZN TSLA NVDA META IBM ORCL NFLX INTC AMD".split()
HELDOUT_TICKERS = ("UBER", "SHOP", "DIS", "SAP")
TRAIN_PEOPLE = "Alice Bob Carol Dave Emma Frank Grace Henry Laura Mike Nina Oscar".split()
HELDOUT_PEOPLE = ("Irene", "Jack", "Paula")
TRAIN_LANGUAGES = ("French", "German", "Spanish", "Italian", "Japanese", "Portuguese")
HELDOUT_LANGUAGES = ("Dutch", "Swedish")
COUNTRIES = (
    "France Germany Spain Italy Japan Canada Egypt India China Russia Poland Austria Ireland "
    "Norway Sweden Portugal Greece Peru Kenya Cuba Chile Thailand Brazil Mexico Australia"
).split()
HELDOUT_COUNTRIES = ("Finland", "Hungary", "Ecuador", "Vietnam")


@dataclass(frozen=True)
class Call:
    """One concrete use of a tool: the user's text, the arguments, the result and the answer."""

    ask: str
    restate: str
    arguments: dict[str, Any]
    result: str
    final: str
    preamble: str
    work: str = ""  # arithmetic worked out step by step, for the analysis when no tool fits


@dataclass(frozen=True)
class Family:
    """A kind of tool and everything needed to declare it and to use it in a conversation.

    `params` lists the roles of the arguments: for each, the names a client might give it, its
    JSON type and a short description. The first role is required; `make` draws one use of the
    tool given the chosen parameter names.
    """

    key: str
    verbs: tuple[str, ...]
    nouns: tuple[str, ...]  # snake_case word groups, e.g. "stock_price"
    summaries: tuple[str, ...]
    heldout_summaries: tuple[str, ...]
    params: tuple[tuple[tuple[str, ...], str, str], ...]
    cannot: str  # "I cannot {cannot} ..." when no declared tool fits
    make: Callable[[random.Random, bool, list[str]], Call]


def _pick(rng: random.Random, train: tuple[str, ...] | list[str], held: tuple[str, ...], h: bool):
    if h and rng.random() < 0.5:
        return rng.choice(held)
    return rng.choice(train)


def _value(rng: random.Random, train: tuple[str, ...], held: tuple[str, ...], h: bool) -> str:
    """A city or a person: in training, a quarter are made-up names (a capitalised word).

    With only a fixed list of cities the model can learn the list instead of copying; a value it
    cannot have memorised forces the copy from the user's words. Held out, the draw is unchanged.
    """
    if not h and rng.random() < 0.25:
        return rng.choice(WORDS).capitalize()
    return _pick(rng, train, held, h)


def _ask(rng: random.Random, train: tuple[str, ...], held: tuple[str, ...], h: bool) -> str:
    return rng.choice(held if h else train)


def _words(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------- the families' uses


def _weather(rng: random.Random, h: bool, p: list[str]) -> Call:
    city = _value(rng, TRAIN_CITIES, HELDOUT_CITIES, h)
    ask = _ask(
        rng,
        (
            "What's the weather in {v}?",
            "Is it raining in {v}?",
            "How warm is it in {v} today?",
            "What is the weather like in {v}?",
            "Tell me the weather for {v}.",
            "Is it sunny in {v}?",
            "Do I need an umbrella in {v} today?",
            "How hot is it in {v}?",
            "I am flying to {v}. What is the weather there?",
            "Weather in {v}, please.",
            "What temperature is it in {v} now?",
            "How cold is it in {v}?",
            "What's the temperature in {v} today?",
            "Check the weather in {v} for me.",
        ),
        (
            "Any idea if it's cold in {v} right now?",
            "Could you check the weather over in {v}?",
            "How many degrees is it currently in {v}?",
        ),
        h,
    ).format(v=city)
    args: dict[str, Any] = {p[0]: city}
    unit = "celsius"
    if len(p) > 1 and rng.random() < 0.4:
        unit = rng.choice(["celsius", "fahrenheit"])
        ask += rng.choice([" Please answer in {u}.", " Use {u}.", " In {u}, please."]).format(
            u=unit
        )
        args[p[1]] = unit
    temp = rng.randint(-5, 35) if unit == "celsius" else rng.randint(25, 95)
    cond = rng.choice(CONDITIONS)
    if rng.random() < 0.5:
        result = _json({"location": city, "temperature": temp, "unit": unit, "condition": cond})
        final = f"It is {temp} degrees {unit} and {cond} in {city} right now."
    else:
        result = f"{temp} degrees {unit.capitalize()} and {cond}"
        final = f"It is {result} in {city} right now."
    return Call(
        ask,
        f"The user asks about the weather in {city}.",
        args,
        result,
        final,
        f"Let me check the weather in {city}.",
    )


def _stock(rng: random.Random, h: bool, p: list[str]) -> Call:
    sym = _pick(rng, TRAIN_TICKERS, HELDOUT_TICKERS, h)
    ask = _ask(
        rng,
        (
            "What is the stock price of {v}?",
            "How much is {v} stock right now?",
            "What's {v} trading at?",
            "Get me a quote for {v}.",
            "Check the share price of {v}.",
            "What does one share of {v} cost?",
            "Price of {v} stock, please.",
        ),
        ("How is {v} doing on the market today, price wise?", "Quote {v} for me."),
        h,
    ).format(v=sym)
    price = f"{rng.randint(10, 900)}.{rng.randint(10, 99)}"
    result = _json({"symbol": sym, "price": float(price)}) if rng.random() < 0.5 else f"{price} USD"
    return Call(
        ask,
        f"The user wants the stock price of {sym}.",
        {p[0]: sym},
        result,
        f"{sym} is trading at {price} USD.",
        f"Let me look up the price of {sym}.",
    )


def _search(rng: random.Random, h: bool, p: list[str]) -> Call:
    topic = _words(rng, 1, 3)
    snippet = _words(rng, 3, 7)
    ask = _ask(
        rng,
        (
            "Search the web for {v}.",
            "Look up {v}.",
            "Find information about {v}.",
            "Can you search for {v}?",
            "Please search {v} online.",
            "I want to learn about {v}. Please search.",
            "Find me articles on {v}.",
            "Could you look up {v} on the web?",
            "Search: {v}",
            "What can you find about {v}?",
            "Do a web search for {v}.",
        ),
        (
            "I would like to read about {v}, can you search?",
            "What does the internet say about {v}?",
        ),
        h,
    ).format(v=topic)
    result = (
        _json({"results": [{"title": topic, "snippet": snippet}]})
        if rng.random() < 0.5
        else snippet
    )
    return Call(
        ask,
        f"The user wants information about {topic}.",
        {p[0]: topic},
        result,
        f"Here is what I found about {topic}: {snippet}.",
        f"I will search for {topic}.",
    )


def arithmetic_expression(rng: random.Random) -> tuple[str, int]:
    """A sum or difference of operands below 100, or a product with one operand below 10.

    The two operands are drawn the same way for every operator (the held-out stream draws
    exactly as before); a product's second operand is folded below 10, the range issue 22 asks
    the model to get exact.
    """
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    op = rng.choice(["+", "-", "*"])
    if op == "*":
        b = b % 9 + 1
    return f"{a} {op} {b}", {"+": a + b, "-": a - b, "*": a * b}[op]


def worked(expr: str) -> str:
    """`expr` worked out in small steps, each one a fact a tiny model can learn.

    Tens first, then ones: 47 + 38 is 47 + 30 = 77, then 77 + 8 = 85; 83 - 47 is 83 - 40 = 43,
    then 43 - 7 = 36; 47 * 6 is 40 * 6 = 240 and 7 * 6 = 42, then 240 + 42 = 282. A difference
    below zero is the reversed difference, negated.
    """
    left, op, right = expr.split()
    a, b = int(left), int(right)
    if op == "*":
        tens, ones = a - a % 10, a % 10
        if tens == 0 or ones == 0:
            return f"{a} * {b} = {a * b}."
        return (
            f"{tens} * {b} = {tens * b} and {ones} * {b} = {ones * b}, "
            f"then {tens * b} + {ones * b} = {a * b}."
        )
    if op == "-" and a < b:
        return f"First {b} - {a}: {worked(f'{b} - {a}')} So {a} - {b} = {a - b}."
    sign = 1 if op == "+" else -1
    tens, ones = b - b % 10, b % 10
    if tens == 0 or ones == 0:
        return f"{a} {op} {b} = {a + sign * b}."
    middle = a + sign * tens
    return f"{a} {op} {tens} = {middle}, then {middle} {op} {ones} = {middle + sign * ones}."


ARITH_ASKS = (
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
HELDOUT_ARITH_ASKS = ("Could you work out {e} for me?", "Quick question: {e} equals what?")


def _calculator(rng: random.Random, h: bool, p: list[str]) -> Call:
    expr, value = arithmetic_expression(rng)
    ask = _ask(rng, ARITH_ASKS, HELDOUT_ARITH_ASKS, h).format(e=expr)
    result = _json({"result": value}) if rng.random() < 0.5 else str(value)
    return Call(
        ask,
        f"The user wants {expr}.",
        {p[0]: expr},
        result,
        f"{expr} = {value}.",
        "Let me calculate that.",
        worked(expr),
    )


def _translate(rng: random.Random, h: bool, p: list[str]) -> Call:
    text = _words(rng, 1, 4)
    lang = _pick(rng, TRAIN_LANGUAGES, HELDOUT_LANGUAGES, h)
    ask = _ask(
        rng,
        (
            "Translate '{v}' into {l}.",
            "How do you say {v} in {l}?",
            "Can you translate {v} to {l}?",
            "Please translate this to {l}: {v}",
        ),
        ("What is {v} in {l}?", "Put {v} into {l} for me."),
        h,
    ).format(v=text, l=lang)
    out = _words(rng, 1, 4)
    return Call(
        ask,
        f"The user wants {text} translated into {lang}.",
        {p[0]: text, p[1]: lang},
        out if rng.random() < 0.6 else _json({"translation": out}),
        f"In {lang} that is: {out}.",
        f"Let me translate that into {lang}.",
    )


def _time(rng: random.Random, h: bool, p: list[str]) -> Call:
    city = _value(rng, TRAIN_CITIES, HELDOUT_CITIES, h)
    ask = _ask(
        rng,
        (
            "What time is it in {v}?",
            "What's the local time in {v}?",
            "Tell me the current time in {v}.",
            "What is the time in {v} right now?",
            "Current time in {v}?",
        ),
        ("Is it late in {v} right now?", "What does the clock say in {v}?"),
        h,
    ).format(v=city)
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    return Call(
        ask,
        f"The user wants the local time in {city}.",
        {p[0]: city},
        clock if rng.random() < 0.5 else _json({"time": clock}),
        f"It is {clock} in {city} right now.",
        f"Let me check the time in {city}.",
    )


def _news(rng: random.Random, h: bool, p: list[str]) -> Call:
    topic = _words(rng, 1, 2)
    ask = _ask(
        rng,
        (
            "What's the latest news about {v}?",
            "Any news on {v}?",
            "Show me headlines about {v}.",
            "What are today's headlines on {v}?",
            "Give me the news about {v}.",
        ),
        ("What happened recently with {v}?", "Catch me up on {v} news."),
        h,
    ).format(v=topic)
    headline = _words(rng, 3, 6)
    return Call(
        ask,
        f"The user wants recent news about {topic}.",
        {p[0]: topic},
        headline if rng.random() < 0.5 else _json({"headlines": [headline]}),
        f"The latest news about {topic}: {headline}.",
        f"Let me get the news about {topic}.",
    )


def _message(rng: random.Random, h: bool, p: list[str]) -> Call:
    who = _value(rng, TRAIN_PEOPLE, HELDOUT_PEOPLE, h)
    body = _words(rng, 2, 5)
    ask = _ask(
        rng,
        (
            "Send a message to {v} saying {t}.",
            "Email {v}: {t}",
            "Tell {v} that {t}.",
            "Please message {v} with this: {t}",
            "Write to {v}: {t}",
        ),
        ("Please drop {v} a note: {t}", "Let {v} know that {t}."),
        h,
    ).format(v=who, t=body)
    return Call(
        ask,
        f"The user wants to send a message to {who}.",
        {p[0]: who, p[1]: body},
        "sent" if rng.random() < 0.5 else _json({"status": "sent"}),
        f"Done, I sent your message to {who}.",
        f"I will send that to {who}.",
    )


def _order(rng: random.Random, h: bool, p: list[str]) -> Call:
    number = rng.randint(1000, 99999)
    ask = _ask(
        rng,
        (
            "Where is my order {v}?",
            "What's the status of order {v}?",
            "Track order number {v}.",
            "Has my package {v} arrived?",
            "Check order {v} for me.",
        ),
        ("Has order {v} shipped yet?", "Any update on my purchase {v}?"),
        h,
    ).format(v=number)
    status = rng.choice(["shipped", "delivered", "processing", "out for delivery"])
    return Call(
        ask,
        f"The user asks about order {number}.",
        {p[0]: number},
        status if rng.random() < 0.5 else _json({"order_id": number, "status": status}),
        f"Order {number} is {status}.",
        f"Let me check order {number}.",
    )


def _country(rng: random.Random, h: bool, p: list[str]) -> Call:
    country = _pick(rng, COUNTRIES, HELDOUT_COUNTRIES, h)
    ask = _ask(
        rng,
        (
            "What is the population of {v}?",
            "How many people live in {v}?",
            "How populous is {v}?",
            "Population of {v}?",
        ),
        ("Roughly how big is the population in {v}?", "How many inhabitants does {v} have?"),
        h,
    ).format(v=country)
    people = f"{rng.randint(2, 300)} million people"
    return Call(
        ask,
        f"The user asks about the population of {country}.",
        {p[0]: country},
        people if rng.random() < 0.5 else _json({"country": country, "population": people}),
        f"{country} has about {people}.",
        f"Let me look up {country}.",
    )


def _file(rng: random.Random, h: bool, p: list[str]) -> Call:
    ext = rng.choice(["txt", "md", "csv", "json", "py"])
    path = f"{rng.choice(WORDS)}/{rng.choice(WORDS)}.{ext}"
    ask = _ask(
        rng,
        (
            "Show me the contents of {v}.",
            "Read the file {v}.",
            "What's in {v}?",
            "Open {v} please.",
            "Print the file {v}.",
        ),
        ("Open {v} and tell me what it says.", "What is written in {v}?"),
        h,
    ).format(v=path)
    text = _words(rng, 2, 6)
    return Call(
        ask,
        f"The user wants to read {path}.",
        {p[0]: path},
        text,
        f"The file {path} says: {text}.",
        f"Let me read {path}.",
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "weather",
        ("get", "fetch", "check", "lookup", "current", "show"),
        ("weather", "current_weather", "weather_report", "temperature", "forecast", "conditions"),
        (
            "Get the current weather for a city.",
            "Get the weather.",
            "Weather lookup.",
            "Return the weather in a location.",
            "Fetch current weather conditions for a place.",
            "Look up the temperature and sky conditions for a city.",
            "Returns today's weather forecast for the given city.",
            "Current temperature and conditions.",
        ),
        (
            "Report how warm or cold it is somewhere and whether it rains.",
            "Weather service: conditions and degrees for any town.",
        ),
        (
            (("location", "city", "place", "city_name", "loc", "where"), "string", "City name"),
            (("unit", "units", "temp_unit", "scale"), "unit", "celsius or fahrenheit"),
        ),
        "check the weather",
        _weather,
    ),
    Family(
        "stock",
        ("get", "lookup", "fetch", "quote", "check"),
        ("stock_price", "stock_quote", "share_price", "ticker_price", "stock", "market_price"),
        (
            "Get the latest stock price for a ticker symbol.",
            "Stock quote.",
            "Look up the current share price of a company by its ticker.",
            "Return the market price of a stock.",
            "Fetch a stock price.",
        ),
        ("Fetch what one share of a listed company costs right now.", "Equity price by ticker."),
        ((("symbol", "ticker", "stock_symbol", "code"), "string", "Ticker symbol"),),
        "look up stock prices",
        _stock,
    ),
    Family(
        "search",
        ("search", "find", "lookup", "query"),
        ("web", "internet", "web_search", "search", "online", "pages"),
        (
            "Search the web and return the top results.",
            "Web search.",
            "Search the internet for a query.",
            "Find pages on the web about a topic.",
            "Run a web search.",
        ),
        ("Query an online search engine and give back result snippets.", "Internet lookup."),
        ((("query", "q", "search_query", "terms", "text"), "string", "What to look for"),),
        "search the web",
        _search,
    ),
    Family(
        "calculator",
        ("calculate", "compute", "eval", "evaluate", "calc", "do"),
        ("math", "expression", "calculator", "arithmetic", "sum"),
        (
            "Evaluate an arithmetic expression.",
            "Calculator.",
            "Compute the result of a math expression like 2 * 21.",
            "Do arithmetic.",
            "Evaluate math.",
        ),
        ("Performs exact numeric calculation on a formula string.", "Math evaluator."),
        ((("expression", "expr", "formula", "input"), "string", "For example 2 * 21"),),
        "calculate",
        _calculator,
    ),
    Family(
        "translate",
        ("translate", "convert"),
        ("text", "translation", "language", "sentence"),
        (
            "Translate text into another language.",
            "Translate.",
            "Translate a sentence to the target language.",
            "Translation service.",
        ),
        ("Render a piece of text in a different human language.",),
        (
            (("text", "source_text", "sentence", "input"), "string", "Text to translate"),
            (("target_language", "language", "to", "target"), "string", "Language name"),
        ),
        "translate text",
        _translate,
    ),
    Family(
        "time",
        ("get", "current", "check", "show"),
        ("time", "local_time", "current_time", "clock", "time_in_city", "timezone_time"),
        (
            "Get the current local time in a city.",
            "Current time.",
            "Return the local time for a given city or time zone.",
            "Clock lookup.",
        ),
        ("Tell what the clock shows right now in some place.",),
        ((("city", "location", "timezone", "place"), "string", "City or time zone"),),
        "check the time",
        _time,
    ),
    Family(
        "news",
        ("get", "fetch", "latest", "read"),
        ("news", "headlines", "latest_news", "articles", "top_stories"),
        (
            "Get the latest news headlines about a topic.",
            "News.",
            "Return recent news articles for a topic.",
            "Fetch headlines.",
        ),
        ("Top stories from today's press about a subject.",),
        ((("topic", "query", "subject", "category"), "string", "News topic"),),
        "get the news",
        _news,
    ),
    Family(
        "message",
        ("send", "post", "notify"),
        ("email", "message", "mail", "sms", "note"),
        (
            "Send an email to a person.",
            "Send a message.",
            "Send a short text message to a contact.",
            "Email someone.",
        ),
        ("Deliver a note to someone's inbox.",),
        (
            (("to", "recipient", "contact", "person"), "string", "Who receives it"),
            (("body", "text", "message", "content"), "string", "What to say"),
        ),
        "send messages",
        _message,
    ),
    Family(
        "order",
        ("get", "track", "check", "lookup"),
        ("order_status", "order", "shipment", "package", "delivery"),
        (
            "Look up the status of an order by its id.",
            "Order status.",
            "Track a shipment.",
            "Check where a package is.",
        ),
        ("Where a customer's purchase currently is in delivery.",),
        ((("order_id", "id", "order_number", "number"), "integer", "Order number"),),
        "track orders",
        _order,
    ),
    Family(
        "country",
        ("get", "lookup", "fetch"),
        ("country_info", "population", "country_facts", "country", "country_stats"),
        (
            "Get facts about a country such as its population.",
            "Country info.",
            "Return the population of a country.",
            "Population lookup.",
        ),
        ("Demographic statistics for a nation.",),
        ((("country", "name", "country_name", "nation"), "string", "Country name"),),
        "look up population numbers",
        _country,
    ),
    Family(
        "file",
        ("read", "open", "get", "load", "cat"),
        ("file", "file_contents", "document", "text_file", "path"),
        (
            "Read a text file and return its contents.",
            "Read file.",
            "Open a file from disk by path.",
            "Return the text of a file.",
        ),
        ("Return what is written in the document at a path.",),
        ((("path", "file_path", "filename", "file"), "string", "File path"),),
        "read files",
        _file,
    ),
)
FAMILY = {f.key: f for f in FAMILIES}
