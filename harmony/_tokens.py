"""The o200k_harmony tokenizer: o200k_base BPE plus the reference's exact special-token table.

tiktoken's own "o200k_harmony" differs from the reference (it keeps <|endofprompt|> and lacks
<|reserved_201088|>), so the table is built here from the reference's definition.
"""

from __future__ import annotations

import functools

import tiktoken

from ._vocab import load_vocab_bytes, parse_vocab

PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

STARTOFTEXT = 199998
ENDOFTEXT = 199999
RETURN = 200002
CONSTRAIN = 200003
CHANNEL = 200005
START = 200006
END = 200007
MESSAGE = 200008
CALL = 200012

_NAMED = {
    "<|startoftext|>": STARTOFTEXT,
    "<|endoftext|>": ENDOFTEXT,
    "<|return|>": RETURN,
    "<|constrain|>": CONSTRAIN,
    "<|channel|>": CHANNEL,
    "<|start|>": START,
    "<|end|>": END,
    "<|message|>": MESSAGE,
    "<|call|>": CALL,
}
N_VOCAB = 201089


def special_tokens() -> dict[str, int]:
    """The 1,091 special tokens of the reference: named ones plus every reserved slot."""
    table = dict(_NAMED)
    taken = set(_NAMED.values())
    for token_id in range(200000, N_VOCAB):
        if token_id not in taken:
            table[f"<|reserved_{token_id}|>"] = token_id
    return table


@functools.lru_cache(maxsize=1)
def core_encoding() -> tiktoken.Encoding:
    """Build (once per process) the tiktoken encoding; ~0.5 s, so it is shared."""
    return tiktoken.Encoding(
        name="o200k_harmony",
        pat_str=PAT_STR,
        mergeable_ranks=parse_vocab(load_vocab_bytes()),
        special_tokens=special_tokens(),
        explicit_n_vocab=N_VOCAB,
    )
