"""Token-by-token streaming state agrees with the reference (spec §8.2-§8.7).

After every token we compare everything a caller can observe: state, state_data,
current_role/channel/recipient/content_type/content, last_content_delta, completed messages and
the token log. An exception must happen at the same token with the same class and message.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given

from tests.harmony import strategies
from tests.harmony.differential import REFERENCE, both, encoding, stream_trace


def _assert_same_trace(case: dict[str, Any]) -> None:
    ours, reference = both(
        lambda lib: stream_trace(lib, case["tokens"], case["role"], case["strict"], case["eos"])
    )
    assert ours.error is None and reference.error is None, (ours, reference)
    for step, (mine, theirs) in enumerate(zip(ours.value, reference.value, strict=False)):
        assert mine == theirs, (
            f"first difference after {step} tokens\nours={mine!r}\nreference={theirs!r}\n"
            f"case={case!r}"
        )
    assert len(ours.value) == len(reference.value), case


@strategies.DIFFERENTIAL
@given(strategies.completions())
def test_streaming_state_after_every_token_matches_reference(case: dict[str, Any]) -> None:
    _assert_same_trace(case)


@strategies.DIFFERENTIAL
@given(strategies.texts, strategies.st.integers(0, 3))
def test_streaming_unicode_content_deltas_match_reference(text: str, cut: int) -> None:
    """Multi-byte characters split across tokens, invalid bytes and partial sequences at EOS."""
    body = encoding(REFERENCE).encode(text, disallowed_special=())
    broken = [9552, 132990, 9559, 4869][:cut]
    case = {
        "tokens": [200005, 35644, 200008, *broken, *body, *broken[::-1], 200007],
        "role": "assistant",
        "strict": True,
        "eos": True,
    }
    _assert_same_trace(case)
    case["tokens"] = case["tokens"][:-1]
    _assert_same_trace(case)


@strategies.DIFFERENTIAL
@given(strategies.completions())
def test_streaming_after_parser_reuse_matches_reference(case: dict[str, Any]) -> None:
    """One parser fed two completions back to back (a misuse seen in sglang #8914)."""
    doubled = dict(case, tokens=case["tokens"] + case["tokens"], eos=True)
    _assert_same_trace(doubled)
