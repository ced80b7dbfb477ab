"""Hugging Face tokenizer files for the o200k_harmony vocabulary.

The proxy itself never needs them (it tokenizes with `harmony`), but a checkpoint without a
tokenizer cannot be opened by `transformers.AutoTokenizer`, and vLLM needs one to compile
structured-output grammars. The files are built from the same o200k_base ranks and special-token
table that `harmony` uses, so every id matches the Harmony encoding: a byte-level BPE whose
merges are recovered from the tiktoken ranks, the o200k pre-tokenizer regex, and each special
token at its Harmony id.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

# The model's vocabulary ends at 201087; the encoding's last reserved slot (201088) lies beyond
# what any gpt-oss model can emit, and a tokenizer longer than the model confuses vLLM.
MODEL_VOCAB_SIZE = 201088
BOS, EOS, PAD = "<|startoftext|>", "<|return|>", "<|endoftext|>"


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocabulary and merges equivalent to tiktoken's rank-ordered merging."""
    table = _bytes_to_unicode()

    def text(piece: bytes) -> str:
        return "".join(table[b] for b in piece)

    vocab: dict[str, int] = {}
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        vocab[text(token)] = rank
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return vocab, [(text(left), text(right)) for _, _, _, left, right in merges]


def special_token_ids() -> dict[str, int]:
    """Every special token of the Harmony encoding that fits the model's vocabulary."""
    from harmony import HarmonyEncodingName, load_harmony_encoding

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    table = {}
    for name in enc.special_tokens_set:
        (token_id,) = enc.encode(name, allowed_special="all")
        if token_id < MODEL_VOCAB_SIZE:
            table[name] = token_id
    return dict(sorted(table.items(), key=lambda item: item[1]))


def build_tokenizer() -> Any:
    """A `tokenizers.Tokenizer` for o200k_harmony."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    from harmony._tokens import PAT_STR
    from harmony._vocab import load_vocab_bytes, parse_vocab

    ranks = parse_vocab(load_vocab_bytes())
    vocab, merges = _vocab_and_merges(ranks)
    specials = special_token_ids()
    vocab.update(specials)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PAT_STR), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(name, special=True, normalized=False) for name in specials]
    )
    return tokenizer


def write_tokenizer_files(directory: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json."""
    tokenizer = build_tokenizer()
    tokenizer.save(str(directory / "tokenizer.json"))
    specials = special_token_ids()
    added = {
        str(token_id): {
            "content": name,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for name, token_id in specials.items()
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "added_tokens_decoder": added,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    special_map = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}
    (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=1) + "\n")
