"""Token-id arguments checked the way the reference's PyO3 boundary converts them to Rust `u32`.

The reference rejects a bad id before doing anything else: a non-integer raises
`TypeError("argument 'token': 'float' object cannot be interpreted as an integer")`, an integer
outside C long `OverflowError("Python int too large to convert to C long")`, and one outside u32
`OverflowError("out of range integral type conversion attempted")`. Anything with `__index__`
(bool, numpy integers) is accepted as its integer value.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

_U32_MAX = 0xFFFFFFFF
_C_LONG = 2**63


def as_token(value: object, argument: str = "token") -> int:
    """`value` as a token id, or the reference's TypeError/OverflowError."""
    if type(value) is int and 0 <= value <= _U32_MAX:
        return value
    try:
        index = operator.index(value)  # type: ignore[arg-type]
    except TypeError as exc:
        raise TypeError(f"argument '{argument}': {exc}") from None
    if not -_C_LONG <= index < _C_LONG:
        raise OverflowError("Python int too large to convert to C long")
    if not 0 <= index <= _U32_MAX:
        raise OverflowError("out of range integral type conversion attempted")
    return index


def as_tokens(values: Iterable[object]) -> list[int]:
    """A token-id sequence as a list (the wrapper's `list(tokens)`), every id checked first."""
    tokens = list(values)
    for value in tokens:
        if type(value) is not int or not 0 <= value <= _U32_MAX:
            return [as_token(v, "tokens") for v in tokens]
    return tokens  # type: ignore[return-value]
