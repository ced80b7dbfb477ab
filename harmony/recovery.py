"""Recover mode of the streaming parser: what it makes of malformed model output.

`StreamableParser(recover=True)` (harmony/parser.py) never raises on model output and keeps
every piece of text; these are its repairs, functions of the parser (`p`) whose state they
read and set, so that the reference's own algorithm reads alone there. What each malformed shape recovers to:

* text with no header (a refusal) -> a message with that text, channel None;
* junk in the header (`<|channel|>commentary ––x to=functions.f`) -> channel, recipient and
  content type picked out, the junk dropped;
* `<|channel|>analysis text<|end|>` (no `<|message|>`) -> a message on that channel with the text;
* a doubled `<|start|>` (or `<|start|>assistant<|start|>assistant`) -> ignored;
* text or `<|channel|>` after `<|end|>` without `<|start|>` -> an implicit `<|start|>` with the
  previous role; stray `<|end|>`/`<|return|>`/`<|call|>` there -> ignored;
* `<|start|>` or `<|channel|>` inside content (missing `<|end|>`) -> the message ends there;
* other special tokens inside content (`<|message|>`, `<|constrain|>`, reserved) -> dropped,
  `<|endoftext|>` -> ends the message;
* `to=functions.f<|constrain|>json`, recipients with `-` `.` `/`, bare tool names, tool calls on
  the analysis channel -> parsed as written (recipient markup glued on is cut off);
* EOS in the middle of a header -> its text, if any, becomes a message;
* `<|message|>` spelled in ordinary tokens (`<`, `|`, `message`, `|`, `>`: a grammar-constrained
  model may, xgrammar sees markers as text) -> the header ends there.

Every repair is named in `recoveries`, so a server can count them.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from . import _tokens as tk
from .header import (
    Header,
    header_words,
    is_plausible_first_word,
    recover_header,
    text_after_channel,
)
from .models import Author, Role

if TYPE_CHECKING:
    from .parser import StreamableParser

STOP = frozenset({tk.RETURN, tk.CALL, tk.END})
# A header longer than this, or with more words, is taken to be text.
_MAX_HEADER_TOKENS = 32
_MAX_HEADER_WORDS = 6
_SPELLED_MESSAGE = b"<|message|>"
# Headers so far that needed no repair, as (their tokens, whether the role was given): checking
# a header token costs a decode and a word split, the verdict depends on nothing else, and a
# model writes the same few headers over and over (`<|channel|>analysis`, `assistant<|channel|>
# final`). Bounded: emptied when full.
_PLAIN_HEADERS: set[tuple[tuple[int, ...], bool]] = set()
_PLAIN_HEADERS_MAX = 4096
# The header each completed header's tokens recovered to, by (its tokens, the role given): the
# decode and parse cost about 8 us a message, the result depends on nothing else, and a model
# opens the same few headers over and over. Its fields are kept, not the `Header`: every
# message gets an `Author` of its own (a pydantic model its reader may change). Bounded like
# `_PLAIN_HEADERS` (a recovered header has at most `_MAX_HEADER_TOKENS` tokens).
_HeaderFields = tuple[Role, str | None, str | None, str | None, str | None, bool]
_HEADERS: dict[tuple[tuple[int, ...], Role | None], _HeaderFields] = {}
_HEADERS_MAX = 4096


# The parser's states: here rather than in parser.py because the repairs set them too, and
# parser.py builds on this module.
class StreamState(Enum):
    EXPECT_START = "ExpectStart"
    HEADER = "Header"
    CONTENT = "Content"


def header_bytes(p: StreamableParser) -> bytes:
    """The header so far as bytes, unknown ids skipped (recover mode only).

    Asked on every header token, so the bytes are kept with the token list they were made of
    and only the tokens appended since are decoded (a new header is a new list: every reset
    assigns one, and header tokens are only ever appended)."""
    tokens = p._header_tokens
    memo = p._header_memo
    done, data = (memo[1], memo[2]) if memo is not None and memo[0] is tokens else (0, b"")
    if done < len(tokens):
        known = [t for t in tokens[done:] if 0 <= t < tk.N_VOCAB]
        data += p._token_bytes(known) or b""
        p._header_memo = (tokens, len(tokens), data)
    return data


def header_text(p: StreamableParser) -> str:
    return header_bytes(p).decode("utf-8", errors="replace")


def completed_header(p: StreamableParser) -> tuple[Header, bool]:
    """The header whose tokens `<|message|>` just ended, and whether it needed repair."""
    key = (tuple(p._header_tokens), p._next_role)
    known = _HEADERS.get(key)
    if known is not None:
        role, name, recipient, channel, content_type, repaired = known
        return Header(Author(role=role, name=name), recipient, channel, content_type), repaired
    header, repaired = recover_header(header_text(p), p._next_role)
    if len(_HEADERS) >= _HEADERS_MAX:
        _HEADERS.clear()
    author = header.author
    _HEADERS[key] = (
        author.role,
        author.name,
        header.recipient,
        header.channel,
        header.content_type,
        repaired,
    )
    return header, repaired


# -- in a header -----------------------------------------------------------------------------


def header_token(p: StreamableParser, token: int) -> None:
    """One header token in recover mode: a repeated start, a header cut short, a spelled
    `<|message|>` or a header that is really text are repaired; anything else is kept."""
    if token == tk.START:
        if header_words(header_text(p)) in ([], [_header_role(p).value]):
            p.recoveries.append("doubled_start")
            p._header_tokens = []
            return
        p.recoveries.append("missing_message")
        header_as_text_message(p)
        p._begin_header()
        return
    if token in STOP or token == tk.ENDOFTEXT:
        p.recoveries.append("missing_message")
        header_as_text_message(p)
        return
    p._header_tokens.append(token)
    seen = (tuple(p._header_tokens), p._next_role is not None)
    if seen in _PLAIN_HEADERS:
        return
    spelled = header_bytes(p).find(_SPELLED_MESSAGE)
    if spelled != -1:
        p.recoveries.append("spelled_message")
        _complete_spelled_header(p, spelled)
        return
    if _looks_like_text(p):
        p.recoveries.append("headerless_text")
        _header_into_content(p)
        return
    if len(_PLAIN_HEADERS) >= _PLAIN_HEADERS_MAX:
        _PLAIN_HEADERS.clear()
    _PLAIN_HEADERS.add(seen)


def _complete_spelled_header(p: StreamableParser, at: int) -> None:
    """`<|message|>` written as ordinary text (a grammar sees markers as their text, so a
    constrained model may spell one): the header ends there, what follows is content."""
    data = header_bytes(p)
    head = data[:at].decode("utf-8", errors="replace")
    header, _ = recover_header(head, p._next_role)
    p._next_role = None
    p._enter_content(header)
    text, tail = _split_incomplete_utf8(data[at + len(_SPELLED_MESSAGE) :])
    p._undecoded_bytes = tail
    if text:
        p._deltas.append(text)
        p._last_delta = text


def _header_role(p: StreamableParser) -> Role:
    return p._next_role or p._last_role


def _looks_like_text(p: StreamableParser) -> bool:
    """Has the header grown into something no header looks like (a refusal, prose)?"""
    if len(p._header_tokens) > _MAX_HEADER_TOKENS:
        return True
    text = header_text(p)
    if "\n" in text:
        return True
    words = header_words(text)
    if len(words) > _MAX_HEADER_WORDS:
        return True
    complete = len(words) > 1 or (words and text.rstrip() != text)
    return bool(complete) and not is_plausible_first_word(words[0], p._next_role is not None)


def _header_into_content(p: StreamableParser) -> None:
    """The buffered header was message text: stream it as content, in one delta."""
    text, tail = _split_incomplete_utf8(header_bytes(p))
    channel, body = text_after_channel(text)
    p._enter_content(Header(Author(role=_header_role(p)), None, channel, None))
    p._next_role = None
    p._undecoded_bytes = tail  # a character split across tokens completes later
    if body:
        p._deltas.append(body)
        p._last_delta = body


def header_as_text_message(p: StreamableParser) -> None:
    """A header that never reached `<|message|>`: keep its text as a message, if any."""
    channel, body = text_after_channel(header_text(p))
    role = _header_role(p)
    if body:
        p._push_message(Header(Author(role=role), None, channel, None), body)
    p._state = StreamState.EXPECT_START
    p._next_role = None
    p._header_tokens = []
    p._last_delta = body or None  # never streamed before: report it whole


# -- outside any message ---------------------------------------------------------------------


def token_outside_message(p: StreamableParser, token: int) -> None:
    """A token after a message's end and before `<|start|>`: stray stop and message markers
    are dropped, anything else opens a message with the previous role."""
    if token in STOP or token == tk.ENDOFTEXT or token == tk.MESSAGE:
        p.recoveries.append("stray_token")
        return
    p.recoveries.append("missing_start")
    p._begin_header()
    p._next_role = p._last_role
    header_token(p, token)


# -- inside a message's content ----------------------------------------------------------------


def special_in_content(p: StreamableParser, token: int) -> None:
    """A special token inside a message's text (the parser handles the stop tokens itself)."""
    if token in (tk.START, tk.CHANNEL):
        p.recoveries.append("missing_end")
        p._finish_message()
        p._begin_header()
        p._next_role = p._last_role
        if token == tk.CHANNEL:
            p._header_tokens.append(token)
    elif token == tk.ENDOFTEXT:
        p.recoveries.append("endoftext_in_content")
        p._finish_message()
    else:
        p.recoveries.append("special_in_content")


def _split_incomplete_utf8(data: bytes) -> tuple[str, bytes]:
    """Decode `data` leniently, holding back a trailing incomplete UTF-8 sequence."""
    for cut in range(1, min(3, len(data)) + 1):
        lead = data[-cut]
        if lead & 0xC0 != 0x80:  # the start of the last character
            needed = 2 if lead >= 0xC0 else 1
            needed = 3 if lead >= 0xE0 else needed
            needed = 4 if lead >= 0xF0 else needed
            if needed > cut:
                return data[:-cut].decode("utf-8", errors="replace"), data[-cut:]
            break
    return data.decode("utf-8", errors="replace"), b""
