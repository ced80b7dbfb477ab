"""A tool family's surface forms: its names, parameter names, descriptions and JSON Schemas.

training/tool_families.py says what each kind of tool does; this module dresses a family
up as a request would declare it, in the naming and description styles clients send, drawing
held-out names and descriptions only for the evaluation.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from training.tool_families import FAMILIES, Family

# Generic name parts every family may use; the family adds its own verbs and nouns.
NAME_PREFIXES = ("", "", "", "", "", "tools", "api", "my", "app", "svc")


NAME_WORDS: tuple[str, ...] = tuple(
    sorted(
        {w for f in FAMILIES for group in f.verbs + f.nouns for w in group.split("_")}
        | {w for f in FAMILIES for role in f.params for n in role[0] for w in n.split("_")}
        | {p for p in NAME_PREFIXES if p}
        | {"tool", "api", "v2", "service", "fn", "do", "run", "lookup", "query", "info"}
    )
)


def _is_heldout_name(name: str) -> bool:
    """A fixed fifth of all possible names is kept for evaluation only."""
    return hashlib.sha256(name.encode()).digest()[0] % 5 == 0


def _style(words: list[str], rng: random.Random) -> str:
    style = rng.choices(
        ["snake", "camel", "pascal", "dash", "dot", "slash"], weights=[5, 2, 1, 1, 1, 1]
    )[0]
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    if style == "dash":
        return "-".join(words)
    if style == "dot" and len(words) > 1:
        return words[0] + "." + "_".join(words[1:])
    if style == "slash" and len(words) > 1:
        return words[0] + "/" + "_".join(words[1:])
    return "_".join(words)


# Exact texts of the client scenarios the tests run: never generated, in training or held out.
RESERVED_NAMES = frozenset(
    {"get_current_temperature", "lookup_stock_price", "get_weather_args", "get_stock_price"}
)
RESERVED_SUMMARIES = frozenset(
    {"Get weather.", "Return the current temperature in a city.", "Look up a stock price."}
)


def tool_name(family: Family, rng: random.Random, heldout: bool) -> str:
    """A client-side tool name (may contain `-`, `.`, `/`), from the train or held-out split."""
    for _ in range(100):
        words: list[str] = []
        prefix = rng.choice(NAME_PREFIXES)
        if prefix:
            words.append(prefix)
        noun = rng.choice(family.nouns).split("_")
        if rng.random() < 0.75:
            words.append(rng.choice(family.verbs))
        words.extend(noun)
        if len(words) == 1 and rng.random() < 0.3:
            words.append(rng.choice(["tool", "api", "v2", "service"]))
        if rng.random() < 0.08:  # an opaque suffix such as `_v2` or `_x7`
            words.append(
                rng.choice("abcxyz") + str(rng.randint(0, 9)) if rng.random() < 0.5 else "v2"
            )
        name = _style(words, rng)
        flat = name.replace("-", "_").replace(".", "_").replace("/", "_").lower()
        if flat in RESERVED_NAMES or "_".join(words) in RESERVED_NAMES:
            continue
        if _is_heldout_name(flat) == heldout:
            return name
    raise RuntimeError("no name found")  # pragma: no cover - 100 draws always find one


def _param_name(choices: tuple[str, ...], rng: random.Random) -> str:
    name = rng.choice(choices)
    if "_" in name and rng.random() < 0.3:
        head, *rest = name.split("_")
        name = head + "".join(w.capitalize() for w in rest)
    return name


def _description(family: Family, rng: random.Random, heldout: bool, params: list[str]) -> str:
    """The description in one of the styles clients send."""
    summaries = [
        s
        for s in (family.heldout_summaries if heldout else family.summaries)
        if s not in RESERVED_SUMMARIES
    ]
    summary = rng.choice(summaries)
    style = rng.choices(["plain", "long", "langchain", "empty"], weights=[6, 2, 2, 0.5])[0]
    if style == "long":
        return (
            summary
            + " "
            + rng.choice(
                [
                    "Use this tool whenever the user asks for it.",
                    "Only call it when it is needed to answer.",
                    "Returns a short text result.",
                    "The result is returned as JSON.",
                ]
            )
        )
    if style == "langchain":
        lines = [summary, "", "Args:"]
        for role, name in zip(family.params, params, strict=False):
            lines.append(f"    {name}: {role[2]}.")
        return "\n".join(lines)
    if style == "empty":
        return ""
    return summary


def tool_declaration(
    family: Family, rng: random.Random, heldout: bool
) -> tuple[dict[str, Any], list[str]]:
    """An OpenAI `tools[]` entry for `family` and the names its parameters got."""
    name = tool_name(family, rng, heldout)
    params = [_param_name(role[0], rng) for role in family.params]
    schema_style = rng.choices(["plain", "described", "pydantic"], weights=[3, 3, 2])[0]
    roles = list(family.params)
    if len(roles) > 1 and roles[1][1] == "unit" and rng.random() < 0.5:
        roles, params = roles[:1], params[:1]  # many weather tools take no unit
    properties: dict[str, Any] = {}
    for (_choices, kind, desc), pname in zip(roles, params, strict=True):
        prop: dict[str, Any] = (
            {"type": "string", "enum": ["celsius", "fahrenheit"]}
            if kind == "unit"
            else {"type": kind}
        )
        if schema_style == "described":
            prop["description"] = desc
        elif schema_style == "pydantic":
            prop = {"title": pname.replace("_", " ").title(), **prop}
        properties[pname] = prop
    if rng.random() < 0.15:  # an optional knob the request never sets
        extra = rng.choice(["limit", "verbose", "lang"])
        properties[extra] = {
            "type": {"limit": "integer", "verbose": "boolean"}.get(extra, "string")
        }
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [params[0]],
    }
    if schema_style == "pydantic":
        parameters = {
            "properties": properties,
            "required": [params[0]],
            "title": f"{name.replace('-', '_').replace('.', '_').replace('/', '_')}_args",
            "type": "object",
            "additionalProperties": False,
        }
    function = {
        "name": name,
        "description": _description(family, rng, heldout, params),
        "parameters": parameters,
    }
    if not function["description"]:
        del function["description"]
    return {"type": "function", "function": function}, params
