"""The compact vocabulary the demo model trains on (training/train.py's module docstring says why).

The model's rows are the ids the data and the copyable word list use, the pieces that spell tool
and parameter identifiers, and the named special tokens; proxy/demo_model/loader.py expands them
to the real vocabulary of `FULL_VOCAB_SIZE` ids.
"""

from __future__ import annotations

from training.data import Example
from training.tool_declarations import NAME_WORDS
from training.words import WORDS

FULL_VOCAB_SIZE = 201088
# <|startoftext|>, <|endoftext|> and <|reserved_200000|> .. <|endofprompt|> (200018).
SPECIAL_IDS = (199998, 199999, *range(200000, 200019))


def identifier_pieces() -> list[str]:
    """Strings whose tokens spell tool and parameter identifiers the data may never show.

    Without their ids in the compact vocabulary the model could not emit them at all (they would
    share the OTHER row). Every printable ASCII character, and every name word in the forms it
    takes inside identifiers: `word`, ` word`, `.word` (after `functions`), `_word`, `Word`.
    """
    words = set(WORDS[:400]) | set(NAME_WORDS)
    pieces = [chr(c) for c in range(33, 127)] + [" " + chr(c) for c in range(33, 127)]
    for word in sorted(words):
        for form in (word, word.capitalize()):
            pieces.extend([form, " " + form, "." + form, "_" + form, '"' + form])
    return pieces


def compact_vocabulary(examples: list[Example]) -> list[int]:
    """Sorted ids the model may emit: specials, everything in the data, identifier pieces."""
    from harmony import HarmonyEncodingName, load_harmony_encoding

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    ids: set[int] = set(SPECIAL_IDS)
    for ex in examples:
        ids.update(ex.prompt)
        ids.update(ex.completion)
    for word in WORDS:
        for form in (word, " " + word, word.capitalize(), " " + word.capitalize()):
            ids.update(enc.encode(form))
    for piece in identifier_pieces():
        ids.update(enc.encode(piece))
    return sorted(ids)
