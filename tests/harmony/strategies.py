"""Hypothesis strategies for differential tests of `harmony` against the reference.

Everything here produces *neutral specs* (plain dicts, lists, tuples) that `differential.py` turns
into either library's objects, so a failing example prints as readable data. The generators lean
on the places where a re-implementation most easily drifts from the reference: unicode and emoji,
text that looks like special tokens or header syntax, the JSON-schema -> TypeScript converter,
namespace ordering, analysis dropping in multi-turn tool loops, and malformed completions.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.harmony.differential import REFERENCE, encoding

# Sized for CI on 2 cores: the whole harmony suite stays within a few minutes. A deeper hunt:
# HARMONY_DIFFERENTIAL_EXAMPLES=5000 pytest tests/harmony -k differential
DIFFERENTIAL = settings(
    max_examples=int(os.environ.get("HARMONY_DIFFERENTIAL_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ROLES = ["system", "developer", "user", "assistant", "tool"]
EFFORTS = ["LOW", "MEDIUM", "HIGH"]

# Fragments that look like Harmony syntax, whitespace the header parser treats specially
# (ASCII vs Unicode whitespace, spec §11), and multi-codepoint graphemes.
TRICKY_FRAGMENTS = [
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
    "<|endoftext|>",
    "<|endofprompt|>",
    "<|reserved_200014|>",
    "<|refusal|>",
    "<|",
    "|>",
    "to=",
    " to=functions.f",
    "to=assistant",
    "functions.",
    "assistant",
    "user",
    "analysis",
    "final",
    "commentary",
    "json",
    " <|constrain|>json",
    "all",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\t",
    "\x0b",
    "\x0c",
    "  ",
    "\u00a0",
    "\u2028",
    "\x85",
    "\u3000",
    "\x1c",
    "💖",
    "👨\u200d👩\u200d👧\u200d👦",
    "🇺🇸",
    "👋🏾",
    "é",
    "e\u0301",
    "ß",
    "中文",
    "こんにちは",
    "مرحبا",
    "नमस्ते",
    "\ufffd",
    "\u0000",
    '"',
    "'",
    "\\",
    "\\n",
    "//",
    "/*",
    "{",
    "}",
    "[]",
    "【6†L9-L11】",
    "# Tools",
    "## functions",
    "namespace",
    "type x = () => any;",
    # Surrogates: a lone one breaks the reference's JSON bridge (ValueError), a pair is an emoji.
    "\ud800",
    "\udfff",
    "\ud83d\ude00",
]

texts = st.lists(
    st.one_of(st.text(max_size=10), st.sampled_from(TRICKY_FRAGMENTS)), max_size=5
).map("".join)
_SPECIAL_LOOKING = [f for f in TRICKY_FRAGMENTS if "<|" in f or "|>" in f]
plain_texts = st.lists(
    st.one_of(
        st.text(max_size=10),
        st.sampled_from([f for f in TRICKY_FRAGMENTS if f not in _SPECIAL_LOOKING]),
    ),
    max_size=5,
).map("".join)
short_texts = st.lists(
    st.one_of(st.text(max_size=4), st.sampled_from(TRICKY_FRAGMENTS)), max_size=2
).map("".join)
identifiers = st.one_of(
    st.sampled_from(["f", "get_weather", "lookup", "search", "a_b", "x1", "Zeta", "ü"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,12}", fullmatch=True),
    short_texts,
)
channels = st.one_of(
    st.none(),
    st.sampled_from(["analysis", "commentary", "final"]),
    st.sampled_from(["x", "final ", "Final", "analysis<|channel|>final"]),
    short_texts,
)
recipients = st.one_of(
    st.none(),
    st.sampled_from(["all", "assistant", "functions.f", "browser.search", "python", "to=x"]),
    identifiers.map(lambda n: f"functions.{n}"),
    short_texts,
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        ["<|constrain|>json", "json", "code", "<|constrain|>", "<|constrain|> json", "text"]
    ),
    short_texts,
    short_texts.map(lambda s: "<|constrain|>" + s),
)

# -- JSON values and JSON schemas (spec §5.1, §5.2) -----------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 10, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e15, 1e16, 1e21, 1e-5, 1.5e-5, 1e-7, -0.0, 0.1, 5e-324, 123.0]),
    # serde_json refuses these (positioned ValueError); NaN is in test_reference_regressions
    # only, because NaN != NaN would break the to_dict comparisons here.
    st.sampled_from([float("inf"), float("-inf"), 10**400, -(10**400), 1.1579208923731604e77]),
    short_texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(short_texts, inner, max_size=3)
    ),
    max_leaves=5,
)
property_keys = st.one_of(
    st.sampled_from(["a", "b", "location", "format", "x y", "ü", "", "id", "nested"]), short_texts
)
type_names = st.sampled_from(
    ["string", "number", "integer", "boolean", "null", "object", "array", "weird"]
)

_annotations: dict[str, Any] = {
    "description": texts,
    "default": json_values,
    "nullable": st.one_of(st.booleans(), json_scalars),
    "title": short_texts,
    "examples": st.lists(st.one_of(short_texts, json_scalars), max_size=3),
    "enum": st.lists(st.one_of(short_texts, json_scalars), max_size=4),
}

leaf_schemas = st.one_of(
    st.fixed_dictionaries({"type": type_names}, optional=_annotations),
    st.fixed_dictionaries(
        {"type": st.just("string"), "enum": st.lists(short_texts, min_size=1, max_size=4)},
        optional={"default": st.one_of(short_texts, json_scalars), "description": texts},
    ),
    st.fixed_dictionaries(
        {"type": st.lists(st.one_of(type_names, json_scalars), max_size=3)},
        optional=_annotations,
    ),
    st.fixed_dictionaries({}, optional=_annotations),
    st.builds(lambda v: {"const": v}, json_scalars),
    st.builds(lambda r: {"$ref": f"#/$defs/{r}"}, short_texts),
    st.fixed_dictionaries({"type": json_scalars}),
)


def _composite_schemas(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    objects = st.fixed_dictionaries(
        {
            "type": st.just("object"),
            "properties": st.dictionaries(property_keys, inner, max_size=4),
        },
        optional={
            "required": st.lists(st.one_of(property_keys, json_scalars), max_size=3),
            "description": texts,
            "additionalProperties": st.booleans(),
            "default": json_values,
            "nullable": st.booleans(),
            "title": short_texts,
        },
    )
    bad_objects = st.fixed_dictionaries(
        {"type": st.just("object")},
        optional={"properties": st.one_of(json_scalars, st.lists(inner, max_size=2))},
    )
    arrays = st.fixed_dictionaries(
        {"type": st.just("array")},
        optional={"items": inner, "description": texts, "default": json_values},
    )
    one_ofs = st.fixed_dictionaries(
        {"oneOf": st.lists(inner, max_size=3)},
        optional={
            "description": texts,
            "default": json_values,
            "nullable": st.booleans(),
            "enum": st.lists(short_texts, max_size=2),
            "type": type_names,
        },
    )
    combinators = st.builds(
        lambda key, variants: {key: variants},
        st.sampled_from(["anyOf", "allOf", "oneOf"]),
        st.one_of(st.lists(inner, max_size=3), inner),
    )
    return st.one_of(objects, bad_objects, arrays, one_ofs, combinators)


schemas = st.recursive(leaf_schemas, _composite_schemas, max_leaves=10)

object_schemas = st.fixed_dictionaries(
    {"type": st.just("object"), "properties": st.dictionaries(property_keys, schemas, max_size=5)},
    optional={
        "required": st.lists(property_keys, max_size=4),
        "description": texts,
        "title": short_texts,
    },
)

tool_parameters = st.one_of(st.none(), st.just({}), object_schemas, schemas)

tools = st.fixed_dictionaries(
    {"name": identifiers, "description": texts, "parameters": tool_parameters}
)

namespaces = st.one_of(
    st.fixed_dictionaries({"kind": st.sampled_from(["browser", "python"])}),
    st.fixed_dictionaries(
        {
            "kind": st.just("custom"),
            "name": st.one_of(
                st.sampled_from(["functions", "browser", "python", "zeta", "Alpha", "mcp_ü"]),
                identifiers,
            ),
            "description": st.one_of(st.none(), texts),
            "tools": st.lists(tools, max_size=3),
        }
    ),
)

# -- system and developer contents (spec §3, §4) ---------------------------------------------------

_system_calls = st.one_of(
    st.tuples(st.just("with_model_identity"), texts),
    st.tuples(st.just("with_reasoning_effort"), st.sampled_from(EFFORTS)),
    st.tuples(st.just("with_conversation_start_date"), st.one_of(st.just("2025-06-28"), texts)),
    st.tuples(st.just("with_knowledge_cutoff"), st.one_of(st.just("2024-06"), short_texts)),
    st.tuples(
        st.just("with_required_channels"),
        st.lists(
            st.one_of(st.sampled_from(["analysis", "commentary", "final"]), short_texts), max_size=4
        ),
    ),
    st.tuples(
        st.just("with_channel_config"),
        st.tuples(st.lists(st.sampled_from(["analysis", "final", "x"]), max_size=3), st.booleans()),
    ),
    st.tuples(st.just("with_browser_tool")),
    st.tuples(st.just("with_python_tool")),
    st.tuples(st.just("with_tools"), namespaces),
)
system_contents = st.fixed_dictionaries(
    {
        "base": st.sampled_from(["new", "new", "none"]),
        "calls": st.lists(_system_calls, max_size=5),
    }
)

_developer_calls = st.one_of(
    st.tuples(st.just("with_instructions"), texts),
    st.tuples(st.just("with_function_tools"), st.lists(tools, max_size=4)),
    st.tuples(st.just("with_tools"), namespaces),
)
developer_contents = st.fixed_dictionaries({"calls": st.lists(_developer_calls, max_size=4)})

# -- messages and conversations --------------------------------------------------------------------

text_contents = st.tuples(st.just("text"), texts)


@st.composite
def messages(draw: st.DrawFn, role: str | None = None) -> dict[str, Any]:
    """Any message: mostly well-formed, sometimes content placed where the reference rejects it."""
    role = role or draw(st.sampled_from(ROLES))
    own_content = {
        "system": st.tuples(st.just("system"), system_contents),
        "developer": st.tuples(st.just("developer"), developer_contents),
    }.get(role, text_contents)
    misplaced = st.one_of(
        st.tuples(st.just("system"), system_contents),
        st.tuples(st.just("developer"), developer_contents),
    )
    contents = draw(
        st.lists(
            st.one_of(*[own_content] * 6, text_contents, misplaced)
            if role in ("system", "developer")
            else st.one_of(*[text_contents] * 8, misplaced),
            max_size=3,
        )
    )
    name = draw(
        st.one_of(identifiers, identifiers, identifiers, st.none())
        if role == "tool"
        else st.one_of(st.none(), st.none(), identifiers)
    )
    return {
        "role": role,
        "name": name,
        "contents": contents,
        "channel": draw(channels),
        "recipient": draw(recipients),
        "content_type": draw(content_types),
    }


def _message(
    role: str,
    text: str,
    *,
    name: str | None = None,
    channel: str | None = None,
    recipient: str | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    return {
        "role": role,
        "name": name,
        "contents": [("text", text)],
        "channel": channel,
        "recipient": recipient,
        "content_type": content_type,
    }


@st.composite
def tool_loop_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Realistic multi-turn tool loops: the shape whose analysis-dropping is easy to get wrong."""
    convo: list[dict[str, Any]] = []
    if draw(st.booleans()):
        convo.append(
            {
                "role": "system",
                "name": None,
                "channel": None,
                "recipient": None,
                "content_type": None,
                "contents": [("system", draw(system_contents))],
            }
        )
    function_tools = draw(st.lists(tools, min_size=1, max_size=3))
    if draw(st.booleans()):
        dev = {
            "calls": [("with_instructions", draw(texts)), ("with_function_tools", function_tools)]
        }
        convo.append(
            {
                "role": "developer",
                "name": None,
                "channel": None,
                "recipient": None,
                "content_type": None,
                "contents": [("developer", dev)],
            }
        )
    for _ in range(draw(st.integers(1, 3))):
        convo.append(_message("user", draw(texts)))
        for _ in range(draw(st.integers(0, 2))):
            fn = "functions." + draw(st.sampled_from([t["name"] for t in function_tools]))
            if draw(st.booleans()):
                convo.append(_message("assistant", draw(texts), channel="analysis"))
            convo.append(
                _message(
                    "assistant",
                    draw(texts),
                    channel=draw(st.sampled_from(["commentary", "analysis"])),
                    recipient=fn,
                    content_type=draw(st.sampled_from(["<|constrain|>json", "json", None])),
                )
            )
            convo.append(
                _message(
                    "tool",
                    draw(texts),
                    name=fn,
                    channel=draw(st.sampled_from(["commentary", None])),
                    recipient=draw(st.sampled_from(["assistant", None])),
                )
            )
        if draw(st.booleans()):
            convo.append(_message("assistant", draw(texts), channel="analysis"))
        ending = draw(st.sampled_from(["final", "final", "commentary", "none"]))
        if ending != "none":
            convo.append(_message("assistant", draw(texts), channel=ending))
    return convo


conversations = st.one_of(
    st.lists(messages(), max_size=6),
    tool_loop_conversations(),
)


@st.composite
def render_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A rendering call: which entry point, on what conversation, with which config/options."""
    method = draw(
        st.sampled_from(["completion", "completion", "conversation", "training", "render"])
    )
    msgs = [draw(messages())] if method == "render" else draw(conversations)
    return {
        "method": method,
        "messages": msgs,
        "auto_drop_analysis": draw(st.sampled_from([None, True, False])),
        "next_turn_role": draw(st.sampled_from(ROLES)),
        "render_options": draw(st.sampled_from([None, True, False])),
    }


# -- completions for the parser (spec §8) ----------------------------------------------------------

SPECIAL_IDS = list(range(199998, 200014)) + [200014, 200018, 201088]
INVALID_IDS = [201089, 300000, 99999999, 2**32 - 1]
# Not even a u32: rejected at the reference's PyO3 boundary (OverflowError) before any parsing.
NOT_U32_IDS = [-1, 2**32, 2**64]


@st.composite
def model_messages(draw: st.DrawFn) -> str:
    """One assistant message as the model writes it (channel first, header variations)."""
    header = ""
    if draw(st.booleans()):
        header += "<|channel|>" + draw(
            st.one_of(*[st.sampled_from(["analysis", "commentary", "final"])] * 6, short_texts)
        )
    recipient = draw(st.one_of(st.none(), recipients.filter(lambda r: r is not None)))
    if recipient is not None:
        header += draw(st.sampled_from([" to=", " to=", "to=", " "])) + recipient
    ctype = draw(content_types)
    if ctype is not None:
        header += draw(st.sampled_from([" ", "", "  "])) + ctype
    if draw(st.integers(0, 9)) == 0:
        header = draw(texts) + header
    stop = draw(st.sampled_from(["<|end|>", "<|call|>", "<|return|>", ""]))
    body = draw(st.one_of(plain_texts, plain_texts, plain_texts, texts))
    separator = draw(st.sampled_from(["<|message|>"] * 8 + ["", "<|channel|>"]))
    return header + separator + body + stop


@st.composite
def completions(draw: st.DrawFn) -> dict[str, Any]:
    """Model-like completions, then random corruption (insertions, deletions, duplications).

    With a role the completion starts right after `<|start|>{role}` (what a sampler returns);
    without one it starts at `<|start|>`.
    """
    role = draw(st.sampled_from(["assistant", "assistant", "assistant", None, None, *ROLES]))
    parts = draw(st.lists(model_messages(), min_size=1, max_size=4))
    text = ""
    for i, part in enumerate(parts):
        if i > 0 or role is None:
            text += "<|start|>" + draw(
                st.sampled_from(
                    ["assistant", "assistant", "functions.f to=assistant", "tool", "user", "", "x"]
                )
            )
        text += part
    tokens = list(encoding(REFERENCE).encode(text, allowed_special="all"))
    token_pool = st.one_of(
        st.sampled_from(SPECIAL_IDS),
        st.integers(0, 201088),
        st.sampled_from([173781, 316, 28, 12606, 815, 4108, 220, 9552, 132990, 35644]),
        st.sampled_from(INVALID_IDS),
        st.sampled_from(INVALID_IDS),
        st.sampled_from(NOT_U32_IDS),
    )
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 4]))):
        action = draw(st.sampled_from(["insert", "insert", "delete", "duplicate", "truncate"]))
        at = draw(st.integers(0, len(tokens)))
        if action == "insert":
            tokens.insert(at, draw(token_pool))
        elif action == "delete" and tokens:
            del tokens[min(at, len(tokens) - 1)]
        elif action == "duplicate":
            tokens[at:at] = tokens[at : at + draw(st.integers(1, 4))]
        elif action == "truncate":
            tokens = tokens[:at]
    return {
        "tokens": tokens,
        "role": role,
        "strict": draw(st.booleans()),
        "eos": draw(st.booleans()),
    }


# -- raw JSON dicts for Message.from_dict / Conversation.from_json (spec §10.1) ---------------------

_content_dicts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": short_texts}),
    st.fixed_dictionaries(
        {"type": st.just("system_content")},
        optional={
            "model_identity": st.one_of(st.none(), short_texts),
            "reasoning_effort": st.sampled_from(["Low", "Medium", "High", "low", None, 3]),
            "channel_config": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {
                        "valid_channels": st.lists(short_texts, max_size=2),
                        "channel_required": st.booleans(),
                    }
                ),
            ),
            "tools": st.one_of(
                st.none(),
                st.dictionaries(
                    short_texts,
                    st.fixed_dictionaries(
                        {
                            "name": short_texts,
                            "tools": st.lists(
                                st.fixed_dictionaries(
                                    {"name": short_texts, "description": short_texts}
                                ),
                                max_size=2,
                            ),
                        }
                    ),
                    max_size=2,
                ),
            ),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("developer_content")},
        optional={"instructions": st.one_of(st.none(), short_texts), "tools": st.none()},
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["image", "Text", 1])}),
    st.fixed_dictionaries({}, optional={"text": short_texts}),
    json_scalars,
)
message_dicts = st.fixed_dictionaries(
    {"role": st.sampled_from([*ROLES, "bot", "USER", 1])},
    optional={
        "name": st.one_of(st.none(), short_texts, st.integers()),
        "content": st.one_of(
            short_texts, st.lists(_content_dicts, max_size=3), st.none(), st.integers()
        ),
        "channel": st.one_of(st.none(), short_texts),
        "recipient": st.one_of(st.none(), short_texts),
        "content_type": st.one_of(st.none(), short_texts),
        "type": st.just("ignored"),
    },
)
