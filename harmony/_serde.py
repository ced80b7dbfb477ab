"""Numbers in tool parameters as the reference's Rust core (serde_json) reads them.

The reference's Python wrapper sends every message/conversation to Rust as `json.dumps` text.
serde_json (without its `float_roundtrip` feature) parses numbers with a fast algorithm that is
not always correctly rounded (`1.1579208923731604e+77` comes back as `…603e77`), and rejects
`NaN`/`Infinity` and out-of-range numbers with a positioned error. Rendered defaults show the
parsed values, and errors name the position, so both are reproduced here.
"""

from __future__ import annotations

import json
import re

_U64_MAX = 2**64 - 1
_LIMIT, _LAST_DIGIT = divmod(_U64_MAX, 10)
_POW10 = tuple(float(f"1e{i}") for i in range(309))


class InvalidJSON(ValueError):
    """serde_json would refuse the payload (NaN/Infinity or a number out of range)."""


def _overflows(significand: int, digit: int) -> bool:
    return significand >= _LIMIT and (significand > _LIMIT or digit > _LAST_DIGIT)


def parse_number(literal: str) -> int | float:
    """serde_json's value for a JSON number literal: u64/i64 when integral and in range, else f64."""
    positive = not literal.startswith("-")
    mantissa, _, exp_text = (literal if positive else literal[1:]).lower().partition("e")
    int_part, dot, frac_part = mantissa.partition(".")
    significand = exponent = 0
    overflowed = False
    for char in int_part:
        if overflowed or _overflows(significand, int(char)):
            overflowed = True
            exponent += 1  # digits past u64 are dropped, keeping the magnitude
        else:
            significand = significand * 10 + int(char)
    if not dot and not exp_text and not overflowed:
        if positive:
            return significand
        return -significand if 0 < significand <= 2**63 else -float(significand)
    for char in frac_part:
        if _overflows(significand, int(char)):
            break
        significand = significand * 10 + int(char)
        exponent -= 1
    if exp_text:
        exp_value = int(exp_text.lstrip("+-"))
        negative_exp = exp_text.startswith("-")
        if exp_value > 2**31 - 1:
            if significand and not negative_exp:
                raise InvalidJSON("number out of range")
            return 0.0 if positive else -0.0
        exponent += -exp_value if negative_exp else exp_value
    value = float(significand)
    while True:
        if abs(exponent) < len(_POW10):
            if exponent >= 0:
                value *= _POW10[exponent]
                if value == float("inf"):
                    raise InvalidJSON("number out of range")
            else:
                value /= _POW10[-exponent]
            break
        if value == 0.0:
            break
        if exponent >= 0:
            raise InvalidJSON("number out of range")
        value /= 1e308
        exponent += 308
    return value if positive else -value


def _reject_constant(name: str) -> object:
    raise InvalidJSON(f"{name} is not valid JSON")


def load_parameters(value: object) -> object:
    """`value` after the wrapper's json.dumps and serde_json's parse (raises InvalidJSON)."""
    dumped = json.dumps(value)
    if "\\ud" in dumped and payload_error(dumped):
        raise InvalidJSON("lone surrogate")
    return json.loads(
        dumped,
        parse_float=parse_number,
        parse_int=parse_number,
        parse_constant=_reject_constant,
    )


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')
# SystemContent.reasoning_effort set to something other than "Low"/"Medium"/"High"/null (the
# builder does not validate): serde_json refuses it as an enum variant.
_EFFORT = re.compile(r'"reasoning_effort": ("(?:[^"\\]|\\.)*"|-?\d+|true|false)')
_EFFORTS = ("Low", "Medium", "High")
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)")


def has_lone_surrogate(text: str) -> bool:
    """Would json.dumps write a `\\udXXX` escape that serde_json refuses (pairs are fine)?"""
    try:
        text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return True
    return False


def _string_error(token: str, start: int) -> str | None:
    """serde_json's error for lone surrogate escapes in one JSON string literal at `start`."""
    pos = 0
    while match := _ESCAPE.search(token, pos):
        pos = match.end()
        if match.group(1) is None:
            continue
        code, at = int(match.group(1), 16), start + match.start()
        if 0xDC00 <= code <= 0xDFFF:
            return f"lone leading surrogate in hex escape at line 1 column {at + 6}"
        if 0xD800 <= code <= 0xDBFF:
            if token[pos : pos + 1] != "\\":
                return f"unexpected end of hex escape at line 1 column {at + 7}"
            if token[pos + 1 : pos + 2] != "u":
                return f"unexpected end of hex escape at line 1 column {at + 8}"
            if not 0xDC00 <= int(token[pos + 2 : pos + 6], 16) <= 0xDFFF:
                return f"lone leading surrogate in hex escape at line 1 column {at + 12}"
            pos += 6
    return None


def _object_end(payload: str, pos: int) -> int:
    """Index just past the `}` closing the object that `pos` is inside."""
    depth = 0
    for match in re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]').finditer(payload, pos):
        char = match.group()
        if char in "{[":
            depth += 1
        elif char in "}]":
            if depth == 0:
                return match.end()
            depth -= 1
    return len(payload)


def payload_error(payload: str) -> str | None:
    """serde_json's error for a wrapper payload (`… at line 1 column N`), or None if it parses."""
    effort = _EFFORT.search(payload)
    for match in _TOKEN.finditer(payload):
        if effort is not None and match.start() >= effort.start():
            value = json.loads(effort.group(1))
            # Content is an internally tagged enum: serde_json buffers the whole object and
            # looks on to the next element before reading the variant, so the error points
            # past the `}` (and past a following ", ").
            end = _object_end(payload, effort.end())
            at = f"at line 1 column {end + (2 if payload[end : end + 1] == ',' else 1)}"
            if isinstance(value, bool):
                return f"invalid type: boolean `{effort.group(1)}`, expected string or map {at}"
            if isinstance(value, int):
                return f"invalid type: integer `{value}`, expected string or map {at}"
            if value not in _EFFORTS:
                expected = "one of `Low`, `Medium`, `High`"
                return f"unknown variant `{value}`, expected {expected} {at}"
            effort = None
        token = match.group()
        if token[0] == '"':
            if "\\u" in token and (error := _string_error(token, match.start())):
                return error
            continue
        if token in ("NaN", "Infinity"):
            return f"expected value at line 1 column {match.start() + 1}"
        if token == "-Infinity":
            return f"invalid number at line 1 column {match.start() + 2}"
        try:
            parse_number(token)
        except InvalidJSON:
            return f"number out of range at line 1 column {match.end()}"
    return None
