"""JSON Schema to the TypeScript-like types gpt-oss was trained on, quirks included.

This reproduces the reference converter exactly (spec §5.1): descriptions printed twice for
nested objects, `anyOf`/`$ref` rendered as `any`, unescaped string defaults and enum members, and
serde_json's number formatting. A prompt that differs by one token from what the model saw in
training degrades it, so "fixing" any of this would be a bug.
"""

from __future__ import annotations

import json
import math
from typing import Any

_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1


def _get(obj: Any, key: str) -> Any:
    """`obj[key]` for JSON objects, None for anything else (serde_json's `Value::get`)."""
    return obj.get(key) if isinstance(obj, dict) else None


def _has(obj: Any, key: str) -> bool:
    return isinstance(obj, dict) and key in obj


def _str(obj: Any, key: str) -> str | None:
    value = _get(obj, key)
    return value if isinstance(value, str) else None


def _is_enum(schema: Any) -> bool:
    enum = _get(schema, "enum")
    return isinstance(enum, list) and len(enum) > 0


def format_float(value: float) -> str:
    """serde_json (ryu) layout of the shortest round-trip digits, e.g. 1e16, 0.00001, 1e-6."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))
    mantissa, _, exp_text = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    exponent = (int(exp_text) if exp_text else 0) - len(frac_part)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    n = len(digits)
    kk = n + exponent
    if 0 <= exponent and kk <= 16:
        body = digits + "0" * exponent + ".0"
    elif 0 < kk <= 16:
        body = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        body = "0." + "0" * (-kk) + digits
    else:
        body = digits[0] + ("." + digits[1:] if n > 1 else "") + "e" + str(kk - 1)
    return sign + body


def to_json(value: Any) -> str:
    """Compact serde_json serialisation: no spaces, raw non-ASCII, ryu floats."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if _I64_MIN <= value <= _U64_MAX:
            return str(value)
        return format_float(float(value))
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _default_comment(schema: Any, default: Any, *, quote_enum_strings: bool = False) -> str:
    """`default: …` text: raw quotes for plain strings, bare for enum strings, else JSON."""
    if isinstance(default, str) and not _is_enum(schema):
        return f'default: "{default}"'
    if isinstance(default, str) and not quote_enum_strings:
        return f"default: {default}"
    return f"default: {to_json(default)}"


def _with_null(variant: Any, rendered: str) -> str:
    if _get(variant, "nullable") is True and "null" not in rendered:
        return rendered + " | null"
    return rendered


def _union(variants: list[Any], indent: str) -> str:
    """A top-level or nested `oneOf`: one `| T` line per variant with trailing comments."""
    out = ""
    for variant in variants:
        out += "\n" + indent + " | " + _with_null(variant, to_typescript(variant, indent + "   "))
        comments = []
        description = _str(variant, "description")
        if description is not None:
            comments.append(description)
        if _has(variant, "default"):
            # Here (only) an enum variant's string default is JSON-quoted.
            comments.append(_default_comment(variant, variant["default"], quote_enum_strings=True))
        if comments:
            out += " // " + " ".join(comments)
    return out


def _property_union(key: str, optional: str, schema: dict, variants: list[Any], indent: str) -> str:
    out = ""
    description = _str(schema, "description")
    first_description = _str(variants[0], "description") if variants else None
    rendered_above = False
    if description is not None and description != first_description:
        out += f"{indent}// {description}\n"
        rendered_above = True
    if "default" in schema:
        out += f"{indent}// {_default_comment(schema, schema['default'])}\n"
    out += f"{indent}{key}{optional}:\n"
    for i, variant in enumerate(variants):
        out += indent + " | " + _with_null(variant, to_typescript(variant, indent + "   "))
        comments = []
        variant_description = _str(variant, "description")
        if (
            variant_description is not None
            and not (i == 0 and rendered_above)
            and variant_description != description
        ):
            comments.append(variant_description)
        if _has(variant, "default"):
            comments.append(_default_comment(variant, variant["default"]))
        if comments:
            out += " // " + " ".join(comments)
        out += "\n"
    return out + f"{indent},\n"


def _object(schema: dict, indent: str) -> str:
    out = ""
    description = _str(schema, "description")
    if description is not None:
        out += f"{indent}// {description}\n"
    out += "{\n"
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required_list = schema.get("required")
        required = (
            {r for r in required_list if isinstance(r, str)}
            if isinstance(required_list, list)
            else set()
        )
        for key, value in properties.items():
            optional = "" if key in required else "?"
            title = _str(value, "title")
            if title is not None:
                out += f"{indent}// {title}\n{indent}//\n"
            if not _has(value, "oneOf"):
                prop_description = _str(value, "description")
                if prop_description is not None:
                    out += f"{indent}// {prop_description}\n"
            examples = _get(value, "examples")
            if isinstance(examples, list) and examples:
                out += f"{indent}// Examples:\n"
                for example in examples:
                    if isinstance(example, str):
                        out += f'{indent}// - "{example}"\n'
            variants = _get(value, "oneOf")
            if isinstance(variants, list):
                out += _property_union(key, optional, value, variants, indent)
                continue
            rendered = _with_null(value, to_typescript(value, indent + "    "))
            out += f"{indent}{key}{optional}: {rendered},"
            if not _has(value, "oneOf") and _has(value, "default"):
                out += f" // {_default_comment(value, value['default'])}"
            out += "\n"
    return out + f"{indent}}}"


def to_typescript(schema: Any, indent: str = "") -> str:
    """Render one JSON schema (already normalised through JSON) as a TypeScript-like type."""
    variants = _get(schema, "oneOf")
    if isinstance(variants, list):
        return _union(variants, indent)
    kind = _get(schema, "type")
    if isinstance(kind, list):
        names = ["number" if k == "integer" else k for k in kind if isinstance(k, str)]
        if names:
            return " | ".join(names)
        return "any"
    if not isinstance(kind, str):
        return "any"
    if kind == "object":
        return _object(schema, indent)
    if kind == "string":
        enum = schema.get("enum")
        if isinstance(enum, list):
            members = [f'"{m}"' for m in enum if isinstance(m, str)]
            if members:
                return " | ".join(members)
        return "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        if "items" in schema:
            return to_typescript(schema["items"], indent) + "[]"
        return "Array<any>"
    return "any"
