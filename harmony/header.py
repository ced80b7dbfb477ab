"""Parsing the header text between `<|start|>` and `<|message|>` (spec §8.5).

`parse_header` is the reference's algorithm, error messages included. `recover_header` is ours:
it never fails and pulls the channel, recipient and content type out of whatever the model wrote,
dropping junk words (vLLM #23567, harmony #38).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import regex

from .models import Author, Role

CHANNEL_MARKER = "<|channel|>"
CONSTRAIN_MARKER = "<|constrain|>"
_MARKUP = re.compile(r"<\|[a-z_0-9]+\|>")
CHANNEL_NAMES = frozenset({"analysis", "commentary", "final"})
_ROLES = {role.value: role for role in Role}

# Rust's char::is_whitespace (Unicode White_Space); Python's isspace() also accepts \x1c-\x1f.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_STR = "".join(_WHITESPACE)
# Rust's split_ascii_whitespace: no \x0b.
_ASCII_WHITESPACE = " \t\n\x0c\r"


class HeaderError(Exception):
    """The header is malformed; the message is the reference's."""


@dataclass(frozen=True)
class Header:
    author: Author
    recipient: str | None = None
    channel: str | None = None
    content_type: str | None = None

    def to_state_dict(self) -> dict:
        """The shape of the reference's `state_data["header"]`."""
        author: dict = {"role": self.author.role.value}
        if self.author.name is not None:
            author["name"] = self.author.name
        return {
            "author": author,
            "recipient": self.recipient,
            "channel": self.channel,
            "content_type": self.content_type,
        }


# Characters Rust's `{:?}` escapes as \u{hex}: not printable (Cc Cf Cs Co Cn Zl Zp, Zs but the
# space) or Grapheme_Extend, anywhere in the string. `regex` (a tiktoken dependency) has newer
# Unicode data than Python's unicodedata; Rust's tables are Unicode 16.0.
_RUST_ESCAPED = regex.compile(
    r"[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Grapheme_Extend}]|(?! )\p{Zs}"
)
# Assigned in Unicode 17.0 (known to `regex`), unassigned (so escaped) in Rust's Unicode 16.0.
_UNICODE_17_RANGES = (
    (0x88F, 0x88F),
    (0xC5C, 0xC5C),
    (0xCDC, 0xCDC),
    (0x20C1, 0x20C1),
    (0x2B96, 0x2B96),
    (0xA7CE, 0xA7CF),
    (0xA7D2, 0xA7D2),
    (0xA7D4, 0xA7D4),
    (0xA7F1, 0xA7F1),
    (0xFBC3, 0xFBD2),
    (0xFD90, 0xFD91),
    (0xFDC8, 0xFDCE),
    (0x10940, 0x10959),
    (0x10EC5, 0x10EC7),
    (0x10ED0, 0x10ED8),
    (0x11B61, 0x11B61),
    (0x11B65, 0x11B65),
    (0x11B67, 0x11B67),
    (0x11DB0, 0x11DDB),
    (0x11DE0, 0x11DE9),
    (0x16EA0, 0x16EB8),
    (0x16EBB, 0x16ED3),
    (0x16FF2, 0x16FF6),
    (0x187F8, 0x187FF),
    (0x18D09, 0x18D1E),
    (0x18D80, 0x18DF2),
    (0x1CCFA, 0x1CCFC),
    (0x1CEBA, 0x1CED0),
    (0x1CEE0, 0x1CEF0),
    (0x1E6C0, 0x1E6DE),
    (0x1E6E0, 0x1E6E2),
    (0x1E6E4, 0x1E6E5),
    (0x1E6E7, 0x1E6ED),
    (0x1E6F0, 0x1E6F4),
    (0x1E6FE, 0x1E6FF),
    (0x1F6D8, 0x1F6D8),
    (0x1F777, 0x1F77A),
    (0x1F8D0, 0x1F8D8),
    (0x1FA54, 0x1FA57),
    (0x1FA8A, 0x1FA8A),
    (0x1FA8E, 0x1FA8E),
    (0x1FAC8, 0x1FAC8),
    (0x1FACD, 0x1FACD),
    (0x1FAEA, 0x1FAEA),
    (0x1FAEF, 0x1FAEF),
    (0x1FBFA, 0x1FBFA),
    (0x2B73A, 0x2B73F),
    (0x2CEA2, 0x2CEAD),
    (0x323B0, 0x33479),
)

# Assigned in Unicode 18.0 (known to `regex` since 2026.9.29), unassigned in Rust's 16.0: what
# `regex` 2026.9.10 calls Cn and 2026.11.19 does not.
_UNICODE_18_RANGES = (
    (0x558, 0x558),
    (0x58B, 0x58C),
    (0x5C8, 0x5C9),
    (0xB53, 0xB54),
    (0x1ADE, 0x1ADF),
    (0x1AEC, 0x1AF0),
    (0x208F, 0x208F),
    (0x209D, 0x209F),
    (0x20C2, 0x20C4),
    (0x2E60, 0x2E63),
    (0xA7DD, 0xA7DD),
    (0xA7E2, 0xA7E2),
    (0xAB6C, 0xAB6D),
    (0x107BB, 0x107BF),
    (0x10EC9, 0x10ECF),
    (0x10ED9, 0x10EEE),
    (0x10EF0, 0x10EF9),
    (0x11B0A, 0x11B0A),
    (0x11DF0, 0x11DF1),
    (0x1246F, 0x1246F),
    (0x12475, 0x1247F),
    (0x12550, 0x12686),
    (0x18CD6, 0x18CDA),
    (0x18D1F, 0x18D20),
    (0x18E00, 0x19191),
    (0x191A0, 0x191D2),
    (0x1B123, 0x1B128),
    (0x1B168, 0x1B168),
    (0x1CED2, 0x1CED4),
    (0x1CEDD, 0x1CEDF),
    (0x1CEF1, 0x1CEFD),
    (0x1D127, 0x1D128),
    (0x1D1EB, 0x1D1FF),
    (0x1D250, 0x1D281),
    (0x1D6A6, 0x1D6A6),
    (0x1DB00, 0x1DB1C),
    (0x1DF1F, 0x1DF24),
    (0x1DF2B, 0x1DF81),
    (0x1DF90, 0x1DF96),
    (0x1DFCD, 0x1DFFF),
    (0x1F1AE, 0x1F1AE),
    (0x1F6D9, 0x1F6D9),
    (0x1F7DA, 0x1F7DB),
    (0x1F7F1, 0x1F7FF),
    (0x1FA8B, 0x1FA8D),
    (0x1FACC, 0x1FACC),
    (0x1FADD, 0x1FADD),
    (0x1FAEB, 0x1FAEB),
    (0x1FAF9, 0x1FAFA),
    (0x2B81E, 0x2B81E),
    (0x3D000, 0x3FC3F),
)
_ASSIGNED_AFTER_16 = tuple(sorted(_UNICODE_17_RANGES + _UNICODE_18_RANGES))
_FIRST_AFTER_16 = _ASSIGNED_AFTER_16[0][0]


def _assigned_after_unicode_16(char: str) -> bool:
    """Assigned after Rust's Unicode 16.0, whichever newer version `regex`'s tables know (the
    venv installs its latest release: 18.0 since 2026.9.29), so Cn, so escaped, to Rust."""
    code = ord(char)
    return code >= _FIRST_AFTER_16 and any(lo <= code <= hi for lo, hi in _ASSIGNED_AFTER_16)


def rust_debug(text: str) -> str:
    """Rust's `{:?}` of a string: JSON-like escapes, control characters as \\u{hex}."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\0":
            out.append("\\0")
        elif _RUST_ESCAPED.match(char) or _assigned_after_unicode_16(char):
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


# Characters `str.split()` splits on that Rust's split_ascii_whitespace does not (in ASCII).
_PYTHON_ONLY_SPACE = frozenset("\x0b\x1c\x1d\x1e\x1f")


def _split_ascii(text: str) -> list[str]:
    """Rust's `split_ascii_whitespace`. An ASCII text without the separators only Python splits
    on (the usual header) takes `str.split()`, one C call: this runs on every header token."""
    if text.isascii() and _PYTHON_ONLY_SPACE.isdisjoint(text):
        return text.split()
    parts = [text]
    for sep in _ASCII_WHITESPACE:
        parts = [p for chunk in parts for p in chunk.split(sep)]
    return [p for p in parts if p]


def _take_channel(text: str) -> tuple[str | None, str]:
    """Remove the first `<|channel|>value` (value ends at whitespace or '<')."""
    start = text.find(CHANNEL_MARKER)
    if start < 0:
        return None, text
    value_start = start + len(CHANNEL_MARKER)
    end = value_start
    while end < len(text) and text[end] not in _WHITESPACE and text[end] != "<":
        end += 1
    return text[value_start:end], text[:start] + text[end:]


def _words(text: str) -> list[str]:
    text = text.strip(_WHITESPACE_STR)
    if CONSTRAIN_MARKER in text:
        text = text.replace(CONSTRAIN_MARKER, " " + CONSTRAIN_MARKER).strip(_WHITESPACE_STR)
    return _split_ascii(text)


def _author(parts: list[str], role: Role | None) -> Author:
    """Steps e/f: take the role (given or from the first word); tool names come from it too."""
    name = None
    if role is None:
        if not parts:
            raise HeaderError("message header did not contain a role")
        first = parts[0]
        if first in _ROLES:
            role = _ROLES[first]
            if role is Role.TOOL:
                name = first  # the reference names inferred tool authors by their first word
        elif len(parts) > 1 or first.startswith("to="):
            parts.pop(0)
            role, name = Role.TOOL, first
        else:
            raise HeaderError(f"Unknown role: {first}")
    if parts and parts[0] == role.value:
        parts.pop(0)
    return Author(role=role, name=name)


def parse_header(text: str, role: Role | None) -> Header:
    """The reference's parse at `<|message|>`; raises HeaderError with its messages."""
    channel, rest = _take_channel(text)
    if channel == "":
        raise HeaderError("channel marker present but no channel value found in header")
    parts = _words(rest)
    author = _author(parts, role)
    recipient = content_type = None
    if parts:
        count = len(parts)
        last = parts.pop()
        if last.startswith("to="):
            recipient = last[3:]
        elif count == 1:
            recipient = last
        else:
            content_type = last
            if parts:
                recipient = parts.pop().removeprefix("to=")
    if parts:
        raise HeaderError(
            f"unexpected tokens remaining in message header: Some({rust_debug(' '.join(parts))})"
        )
    return Header(author, recipient, channel, content_type)


def parse_header_lenient(text: str, role: Role | None) -> tuple[Header, str]:
    """Non-strict recovery at a stop token: (header without recipient, leftover words as text)."""
    channel, rest = _take_channel(text)
    if channel == "":
        raise HeaderError("channel marker present but no channel value found in header")
    parts = _words(rest)
    author = _author(parts, role)
    return Header(author, None, channel, None), " ".join(parts)


def _clean_recipient(recipient: str | None) -> str | None:
    """Cut Harmony markup glued to a recipient (`functions.f<|channel|>commentary`)."""
    if recipient is None:
        return None
    recipient = recipient.split("<|", 1)[0]
    return recipient or None


def recover_header(text: str, role: Role | None) -> tuple[Header, bool]:
    """Best-effort header for serving; returns (header, whether anything had to be repaired)."""
    try:
        header = parse_header(text, role)
    except HeaderError:
        pass
    else:
        recipient, content_type = header.recipient, header.content_type
        if recipient is not None and recipient.startswith(CONSTRAIN_MARKER):
            recipient, content_type = None, recipient  # `final <|constrain|>json`
        recipient = _clean_recipient(recipient)
        if recipient == header.recipient and content_type == header.content_type:
            return header, False
        return Header(header.author, recipient, header.channel, content_type), True

    channel, rest = _take_channel(text)
    parts = _words(rest)
    name = None
    if role is None:
        if parts and parts[0] in _ROLES:
            role = _ROLES[parts.pop(0)]
        elif parts and "." in parts[0] and not parts[0].startswith("to="):
            role, name = Role.TOOL, parts.pop(0)
        else:
            role = Role.ASSISTANT
    while parts and parts[0] == role.value:
        parts.pop(0)
    recipient = content_type = None
    for i, part in enumerate(parts):
        if recipient is None and part.startswith("to="):
            recipient = _clean_recipient(part[3:])
        elif content_type is None and part.startswith(CONSTRAIN_MARKER):
            content_type = part
            if part == CONSTRAIN_MARKER and i + 1 < len(parts) and "<|" not in parts[i + 1]:
                content_type += parts[i + 1]
        elif not channel and part in CHANNEL_NAMES:
            channel = part  # the model forgot the <|channel|> marker
    return Header(Author(role=role, name=name), recipient, channel or None, content_type), True


def header_words(text: str) -> list[str]:
    """Whitespace-separated words of a partial header, with markers split off as their own."""
    return _words(text.replace(CHANNEL_MARKER, " " + CHANNEL_MARKER))


def is_plausible_first_word(word: str, role_given: bool) -> bool:
    """Could a header start with this word? Used to tell header-less text from a header."""
    head = word.split("<|", 1)[0]
    if head == "" or head in _ROLES or head in CHANNEL_NAMES or head.startswith("to="):
        return True
    return not role_given and "." in head


def text_after_channel(text: str) -> tuple[str | None, str]:
    """(channel, the rest as written, markup removed) for a header that was message text."""
    channel, rest = _take_channel(text)
    rest = _MARKUP.sub("", rest).lstrip(_WHITESPACE_STR)
    for role_word in _ROLES:
        if rest.startswith(role_word + " ") or rest == role_word:
            rest = rest[len(role_word) :].lstrip(_WHITESPACE_STR)
            break
    return channel or None, rest
