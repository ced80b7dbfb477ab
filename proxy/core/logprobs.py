"""Engine log-probabilities -> OpenAI `logprobs.content` entries.

Only tokens that add to the answer (`content`) get an entry: reasoning is not exposed through
logprobs (that would leak hidden chain of thought when `include_reasoning` is false, and OpenAI
never shows reasoning tokens), and tool-call arguments are not content.
"""

from __future__ import annotations

from typing import Any

from harmony import HarmonyEncoding

# {"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}, ...]}: the
# shape both OpenAI APIs use, kept as a plain dict (the core imports no API's models).
TokenLogprob = dict[str, Any]


def token_logprob(
    encoding: HarmonyEncoding, token: int, position: dict[int, float], top_n: int
) -> TokenLogprob:
    """The entry for the sampled `token`, given the engine's {token id: logprob} at its position."""
    best = sorted(position.items(), key=lambda item: item[1], reverse=True)[:top_n]
    entry = _describe(encoding, token, position.get(token, float("-inf")))
    entry["top_logprobs"] = [_describe(encoding, t, lp) for t, lp in best]
    return entry


def _describe(encoding: HarmonyEncoding, token: int, logprob: float) -> dict[str, object]:
    # surrogateescape round-trips a token's exact bytes, even half of a UTF-8 character.
    data = encoding.decode([token], errors="surrogateescape").encode("utf-8", "surrogateescape")
    return {
        "token": data.decode("utf-8", errors="replace"),
        "logprob": max(logprob, -9999.0),
        "bytes": list(data),
    }
