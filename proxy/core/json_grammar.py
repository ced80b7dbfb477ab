"""Compact JSON grammars for tool arguments and JSON answers, sharing one set of JSON rules.

xgrammar's structural tag converts every `json_schema` element on its own: each tool gets its
own copy of the generic JSON rules (strings, numbers, arrays, objects) and, with `excludes`,
its own marker-excluding string automaton, and the engine's tokenizer-aware compile pays for
every copy. Here each schema is converted once to EBNF (compact: no whitespace between tokens,
as gpt-oss writes JSON), its own rules renamed per tool, and the generic rules replaced by one
shared block (`SHARED_RULES`), so N tools cost N schema-specific rule sets plus one JSON core.

The shared block keeps the guarantee of the structural tag's `excludes: ["<|"]`: a JSON string
(value or key) cannot contain `<|`, the prefix of every Harmony marker, so it cannot swallow
`<|call|>` or `<|end|><|start|>...`. It also bounds free numbers (at most 16 integer and 16
fraction digits, a one- or two-digit exponent: no value JavaScript reads as Infinity).
A schema whose converted rules this module cannot prove marker-free (a `pattern`, `format` or
length-bounded string, an enum or key containing `<|`, a generic rule it does not know) gets
None, and the caller falls back to xgrammar's own `json_schema` element with `excludes`.
"""

from __future__ import annotations

import re

from proxy.core.bounded_cache import MiB, bounded_cache

# One set for every tool of a tag. A JSON string may not contain `<|`: a `<` (or a run of them,
# `basic_lts`) is followed by the closing quote, an escape, or a character other than `|`.
# Written as one self-recursive rule over a terminal one, not as two rules calling each other:
# xgrammar's rule-level cache (on in vLLM's engine) hashes only rules that refer to themselves
# or to already hashed rules, so this way a running engine reuses the string's token masks for
# every later tool set instead of recomputing them per tag (~30 ms each time on a 2-core host;
# tests/proxy/test_structured.py checks the shape). The lookahead tells the compiler what may
# follow a string (as xgrammar's own rule does), which keeps the per-token masks small.
SHARED_RULES = r"""basic_escape ::= [\"\\/bfnrt] | "u" [A-Fa-f0-9] [A-Fa-f0-9] [A-Fa-f0-9] [A-Fa-f0-9]
basic_lts ::= "<" basic_lts | "<"
basic_string_sub ::= ("\"" | [^\0-\x1f\"\\<] basic_string_sub | basic_lts "\"" | basic_lts [^\0-\x1f\"\\<|] basic_string_sub | basic_lts "\\" basic_escape basic_string_sub | "\\" basic_escape basic_string_sub) (=([,}\]:]))
basic_string ::= "\"" basic_string_sub
basic_integer ::= "0" | "-"? [1-9] [0-9]{0,15}
basic_number ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [+\-]? [0-9]{1,2})?
basic_boolean ::= "true" | "false"
basic_null ::= "null"
basic_any ::= basic_number | basic_string | basic_boolean | basic_null | basic_array | basic_object
basic_array ::= "[" basic_any ("," basic_any)* "]" | "[" "]"
basic_object ::= "{" basic_string ":" basic_any ("," basic_string ":" basic_any)* "}" | "{" "}"
"""
_SHARED_NAMES = frozenset(re.findall(r"^(\w+) ::=", SHARED_RULES, re.MULTILINE))
# A token of an EBNF rule body: a string literal, a character class, or an identifier.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|[A-Za-z_][A-Za-z0-9_]*')
_RULE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) ::= (.*)$")
# Character classes a schema-specific rule may use: digits and number signs only. Anything
# wider (a pattern, format or maxLength string) might admit `<|`, so such a schema falls back.
_SAFE_CLASS = re.compile(r"\[[0-9eE+\\\-.]*\]")


def compact_rules(schema_json: str, prefix: str) -> str | None:
    """The schema's own EBNF rules (root: `{prefix}root`), referring to SHARED_RULES; None when
    the schema cannot be expressed that way (the caller then uses xgrammar's json_schema)."""
    converted = _converted(schema_json)
    if converted is None:
        return None
    rules: dict[str, str] = {}
    for line in converted.splitlines():
        if not line.strip():
            continue
        match = _RULE.match(line)
        if match is None:
            return None
        rules[match.group(1)] = match.group(2)
    own = {name for name in rules if not name.startswith("basic_")}
    if "root" not in own:
        return None
    lines = []
    for name in sorted(own):
        body = rules[name]
        renamed: list[str] = []
        last = 0
        for token in _TOKEN.finditer(body):
            text = token.group(0)
            if text.startswith('"'):
                if "<|" in text:
                    return None
            elif text.startswith("["):
                if not _SAFE_CLASS.fullmatch(text):
                    return None
            elif text in own:
                text = prefix + text
            elif text not in _SHARED_NAMES:
                return None  # a generic rule this module does not provide
            renamed.append(body[last : token.start()] + text)
            last = token.end()
        lines.append(f"{prefix}{name} ::= {''.join(renamed)}{body[last:]}")
    return "\n".join(lines)


@bounded_cache(4 * MiB, 256 << 10)
def _converted(schema_json: str) -> str | None:
    """`compact_ebnf`, in the isolated worker for a large schema: xgrammar's C++ holds the GIL
    and would stall the event loop (proxy/core/isolated.py)."""
    from proxy.core.isolated import checked

    ebnf = checked("compact_ebnf", schema_json)
    # a worker that died answers with its failure sentence, not rules: use the fallback
    return ebnf if ebnf is not None and "root ::=" in ebnf else None


def compact_ebnf(schema_json: str) -> str | None:
    """xgrammar's compact EBNF for the schema (None without xgrammar or if it refuses it)."""
    try:
        import xgrammar
    except ImportError:
        return None
    try:
        grammar = xgrammar.Grammar.from_json_schema(
            schema_json, any_whitespace=False, separators=(",", ":")
        )
    except Exception:  # noqa: BLE001 - the fallback reports the engine's own error
        return None
    return str(grammar)
