"""The incremental Harmony parser: one token in, channel/recipient/content deltas out (spec §8).

Strict and non-strict modes reproduce the reference token for token, errors included. The
`recover=True` mode is ours, for serving: it never raises on model output and keeps every piece
of text; how each malformed shape is repaired lives in harmony/recovery.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _tokens as tk
from . import recovery
from ._errors import HarmonyError
from ._token_args import as_token
from .header import Header, HeaderError, parse_header, parse_header_lenient
from .models import Message, Role, TextContent
from .recovery import STOP, StreamState

if TYPE_CHECKING:
    from .encoding import HarmonyEncoding

_REPLACEMENT = "\ufffd"


class StreamableParser:
    """Incremental parser over completion tokens; create one per completion."""

    def __init__(
        self,
        encoding: HarmonyEncoding,
        role: Role | None,
        *,
        strict: bool = True,
        recover: bool = False,
    ) -> None:
        role_value = role.value if role is not None else None  # a plain str fails, as upstream
        self._encoding = encoding
        self._strict = strict
        self._recover = recover
        self._next_role: Role | None = Role(role_value) if role_value is not None else None
        self._last_role: Role = self._next_role or Role.ASSISTANT
        self._tokens: list[int] = []
        # Completed messages as (header, text); their `Message` models are built when asked
        # for (`messages`), into `_messages`: a server that only streams never builds them.
        self._finished: list[tuple[Header, str]] = []
        self._messages: list[Message] = []
        self._state = StreamState.HEADER if role is not None else StreamState.EXPECT_START
        self._header_tokens: list[int] = []
        # (the header token list, how many of them, their bytes): recovery.header_bytes' memo
        self._header_memo: tuple[list[int], int, bytes] | None = None
        self._header: Header | None = None
        self._deltas: list[str] = []  # decoded content so far, as the deltas it arrived in
        self._undecoded_tokens: list[int] = []
        self._undecoded_bytes = b""
        self._last_delta: str | None = None
        self.recoveries: list[str] = []
        token_text = encoding._token_text
        self._token_text = token_text
        self._token_bytes = encoding._token_bytes

    # -- feeding -------------------------------------------------------------------------------

    def process(self, token: int) -> StreamableParser:
        if type(token) is not int or not 0 <= token <= 0xFFFFFFFF:
            token = as_token(token)  # the reference's u32 argument check (TypeError/OverflowError)
        self._tokens.append(token)
        self._last_delta = None
        state = self._state
        if state is StreamState.CONTENT:
            if token in STOP:
                self._finish_message()
            elif self._recover and self._encoding.is_special_token(token):
                recovery.special_in_content(self, token)
            else:
                self._decode_content(token)
        elif state is StreamState.HEADER:
            self._header_token(token)
        elif token == tk.START:
            self._begin_header()
        elif self._recover:
            recovery.token_outside_message(self, token)
        else:
            raise HarmonyError(f"Unexpected token {token} while expecting start token {tk.START}")
        return self

    def process_text_run(
        self, tokens: Sequence[int], start: int, stops: frozenset[int] = frozenset()
    ) -> tuple[int, str]:
        """An extension for servers: the ordinary text tokens of the current message from
        `tokens[start]` on, at once. Returns how many were taken and their joined text (also
        `last_content_delta`); (0, "") when the parser is not inside a message's content.

        Taking them one `process()` each is the same (messages, `state_data`, `tokens`), but a
        server's engine hands over several tokens per step, and most are plain text: one call
        per run of them instead of one per token. The run stops before the first token that
        needs `process()`'s care: a special token, one in `stops` (ordinary tokens the caller
        ends a generation on), one outside the vocabulary, or one whose bytes are not whole
        UTF-8 on their own (a character split across tokens), and while such bytes are held.
        When it takes nothing, `last_content_delta` is left as it was.
        """
        if (
            self._state is not StreamState.CONTENT
            or self._undecoded_tokens
            or self._undecoded_bytes
        ):
            return 0, ""
        table = self._encoding._tables.token_text
        special = self._encoding._special_ids
        end, limit = start, len(tokens)
        pieces: list[str] = []
        while end < limit:
            token = tokens[end]
            if type(token) is not int or token in special or not 0 <= token < tk.N_VOCAB:
                break
            if token in stops:
                break
            text = table[token]
            if text is None:
                break
            pieces.append(text)
            end += 1
        if end == start:
            return 0, ""
        self._tokens.extend(tokens[start:end])
        self._deltas.extend(pieces)  # one delta per token, as process() keeps them
        joined = self._last_delta = "".join(pieces)
        return end - start, joined

    def process_eos(self) -> StreamableParser:
        self._last_delta = None
        if self._state is StreamState.CONTENT:
            self._finish_message()
        elif self._state is StreamState.HEADER:
            if not self._recover:
                raise HarmonyError("Unexpected EOS while waiting for message header to complete")
            self.recoveries.append("eos_in_header")
            recovery.header_as_text_message(self)
        return self

    # -- header --------------------------------------------------------------------------------

    def _begin_header(self) -> None:
        self._state = StreamState.HEADER
        self._header_tokens = []

    def _header_token(self, token: int) -> None:
        if token == tk.MESSAGE:
            self._complete_header()
        elif token in STOP and not self._strict and not self._recover:
            self._nonstrict_stop_in_header()
        elif self._recover:
            recovery.header_token(self, token)
        else:
            self._header_tokens.append(token)

    def _complete_header(self) -> None:
        if self._recover:
            header, repaired = recovery.completed_header(self)
            if repaired:
                self.recoveries.append("header_repaired")
        else:
            # The reference leaves the header state before parsing it: after a header error the
            # parser is in ExpectStart (next_role kept), not still collecting header tokens.
            self._state = StreamState.EXPECT_START
            try:
                text = self._encoding.decode_utf8(self._header_tokens)
            except HarmonyError:
                raise HarmonyError("could not decode header") from None
            try:
                header = parse_header(text, self._next_role)
            except HeaderError as exc:
                raise HarmonyError(str(exc)) from None
        self._next_role = None
        self._enter_content(header)

    def _nonstrict_stop_in_header(self) -> None:
        """The reference's non-strict repair: only the very first message is kept."""
        if self._next_role is not None and self._header_tokens:
            try:
                text = self._encoding.decode_utf8(self._header_tokens)
                header, body = parse_header_lenient(text, self._next_role)
            except (HarmonyError, HeaderError) as exc:
                raise HarmonyError(str(exc)) from None
            self._push_message(header, body)
        self._state = StreamState.EXPECT_START
        self._next_role = None

    # -- content -------------------------------------------------------------------------------

    def _enter_content(self, header: Header) -> None:
        self._state = StreamState.CONTENT
        self._header = header
        self._last_role = header.author.role
        self._deltas = []
        self._undecoded_tokens = []
        self._undecoded_bytes = b""
        self._last_delta = None

    def _decode_content(self, token: int) -> None:
        if not self._undecoded_tokens and not self._undecoded_bytes:
            text = self._token_text(token)
            if text is not None:
                self._deltas.append(text)
                self._last_delta = text
                return
        self._undecoded_tokens.append(token)
        data = self._token_bytes(self._undecoded_tokens)
        if data is None:  # an unknown id: wait (every later token of the message fails too)
            return
        self._undecoded_tokens = []
        data = self._undecoded_bytes + data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            delta = ""
            if exc.start > 0:
                delta = data[: exc.start].decode("utf-8")
                self._deltas.append(delta)
            if exc.reason == "unexpected end of data":
                self._undecoded_bytes = data[exc.start :]
                self._last_delta = delta or None
            else:
                # One invalid sequence per token, as the reference; U+FFFD is encoded as its own
                # piece of content_tokens (state_data), apart from the valid text before it.
                self._deltas.append(_REPLACEMENT)
                delta += _REPLACEMENT
                self._undecoded_bytes = data[exc.end :]
                self._last_delta = delta
            return
        self._undecoded_bytes = b""
        self._deltas.append(text)
        self._last_delta = text

    def _finish_message(self) -> None:
        streamed = "".join(self._deltas)
        text = streamed
        if self._undecoded_tokens:
            try:
                text += self._encoding.decode_utf8(self._undecoded_tokens)
            except HarmonyError:
                text += _REPLACEMENT
        if self._undecoded_bytes:
            text += self._undecoded_bytes.decode("utf-8", errors="replace")
        assert self._header is not None
        self._push_message(self._header, text)
        self._state = StreamState.EXPECT_START
        self._header = None
        self._deltas = []
        self._undecoded_tokens = []
        self._undecoded_bytes = b""
        # Recover mode reports text that only materialised now (bytes held back for a split
        # character) as a last delta, so a consumer of deltas alone loses nothing.
        self._last_delta = (text[len(streamed) :] or None) if self._recover else None

    def _push_message(self, header: Header, text: str) -> None:
        self._finished.append((header, text))
        self._last_role = header.author.role

    # -- reading -------------------------------------------------------------------------------

    @property
    def current_content(self) -> str:
        return "".join(self._deltas) if self._state is StreamState.CONTENT else ""

    @property
    def current_role(self) -> Role | None:
        if self._state is StreamState.CONTENT:
            assert self._header is not None
            return self._header.author.role
        return self._next_role

    @property
    def current_content_type(self) -> str | None:
        return self._header.content_type if self._header is not None else None

    @property
    def current_recipient(self) -> str | None:
        return self._header.recipient if self._header is not None else None

    @property
    def current_channel(self) -> str | None:
        return self._header.channel if self._header is not None else None

    @property
    def last_content_delta(self) -> str | None:
        return self._last_delta

    @property
    def messages(self) -> list[Message]:
        """The completed messages. Their models are built on the first read after they
        complete and kept: every read returns the same objects (a server that only streams,
        routing by `message_address`, never builds them)."""
        built = self._messages
        for header, text in self._finished[len(built) :]:
            built.append(
                Message(
                    author=header.author,
                    content=[TextContent(text=text)],
                    channel=header.channel,
                    recipient=header.recipient,
                    content_type=header.content_type,
                )
            )
        return list(built)

    @property
    def message_count(self) -> int:
        """len(messages) without copying or building them (an extension: a server asks every
        token)."""
        return len(self._finished)

    def message_address(self, index: int) -> tuple[str | None, str | None]:
        """Completed message `index`'s (channel, recipient), without building its `Message`
        (an extension: a server routes every message by these)."""
        header = self._finished[index][0]
        return header.channel, header.recipient

    @property
    def tokens(self) -> list[int]:
        return list(self._tokens)

    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def state_data(self) -> dict[str, Any]:
        if self._state is StreamState.EXPECT_START:
            return {"state": "ExpectStart"}
        if self._state is StreamState.HEADER:
            return {"state": "Header", "header_tokens": list(self._header_tokens)}
        assert self._header is not None
        encode = self._encoding._encode_ordinary
        content_tokens = [t for delta in self._deltas for t in encode(delta)]
        return {
            "state": "Content",
            "header": self._header.to_state_dict(),
            "content_tokens": content_tokens,
        }
