"""`HarmonyEncoding`: the reference's entry point for rendering, parsing and (de)tokenising."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Sequence
from collections.abc import Set as AbstractSet
from enum import Enum
from typing import Literal

from . import _tokens as tk
from ._errors import HarmonyError
from ._serde import InvalidJSON, has_lone_surrogate, payload_error
from ._token_args import as_token, as_tokens
from .models import Conversation, Message, RenderConversationConfig, RenderOptions, Role
from .parser import StreamableParser
from .render import Renderer, RenderError

_STOP_TOKENS = [tk.RETURN, tk.END, tk.CALL]
_ACTION_STOP_TOKENS = [tk.RETURN, tk.CALL]
_DEFAULT_CONFIG = RenderConversationConfig(auto_drop_analysis=True)


class HarmonyEncodingName(str, Enum):
    HARMONY_GPT_OSS = "HarmonyGptOss"

    def __str__(self) -> str:
        return str(self.value)


def _raise_if_invalid_json(to_json: Callable[[], str], kind: str, exc: Exception) -> None:
    """The reference parses the whole JSON payload before rendering: its errors come first.

    Only reached when rendering failed, so the fast path never serialises the payload.
    """
    error = payload_error(to_json())
    if error is not None:
        raise ValueError(f"invalid {kind} JSON: {error}") from None
    if isinstance(exc, InvalidJSON):
        raise ValueError(f"invalid {kind} JSON: {exc}") from None


def _refusing_lone_surrogates(encode: Callable[[str], list[int]]) -> Callable[[str], list[int]]:
    """The rendering encoder, refusing text the reference's JSON bridge cannot carry.

    json.dumps writes a lone surrogate as a `\\udXXX` escape that serde_json rejects (tiktoken
    would silently replace it); the entry point then reports serde_json's positioned error.
    """

    def encode_piece(text: str) -> list[int]:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                if has_lone_surrogate(text):
                    raise InvalidJSON("lone surrogate") from None
        return encode(text)

    return encode_piece


def raise_disallowed_special_token(token: str) -> None:
    raise HarmonyError(
        "Encountered text corresponding to disallowed special token "
        f"{token!r}.\n"
        "If you want this text to be encoded as a special token, "
        f"pass it to `allowed_special`, e.g. `allowed_special={{'{token}', ...}}`.\n"
        "If you want this text to be encoded as normal text, disable the check for this token "
        f"by passing `disallowed_special=(enc.special_tokens_set - {{'{token}'}})`.\n"
        "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )


@functools.lru_cache(maxsize=64)
def _special_token_regex(tokens: frozenset[str]) -> re.Pattern[str]:
    return re.compile("(" + "|".join(re.escape(token) for token in tokens) + ")")


class _Tables:
    """Per-token lookups shared by every parser (built once, lazily: ~0.2 s)."""

    def __init__(self, core: object) -> None:
        n_vocab = tk.N_VOCAB
        decode_bytes = core.decode_single_token_bytes  # type: ignore[attr-defined]
        self.token_bytes: list[bytes] = [decode_bytes(i) for i in range(n_vocab)]
        texts: list[str | None] = []
        for data in self.token_bytes:
            try:
                texts.append(data.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
        self.token_text = texts


class HarmonyEncoding:
    """Rendering, parsing and tokenising for one Harmony encoding (only HarmonyGptOss exists)."""

    def __init__(self, name: str = "HarmonyGptOss") -> None:
        self._name = name
        self._core = tk.core_encoding()
        self._encode_ordinary = self._core.encode_ordinary
        self._renderer = Renderer(_refusing_lone_surrogates(self._encode_ordinary))
        self._special_ids = frozenset(self._core._special_tokens.values())

    @functools.cached_property
    def _tables(self) -> _Tables:
        return _Tables(self._core)

    def _token_text(self, token: int) -> str | None:
        """The token's text when its bytes are complete UTF-8 on their own, else None."""
        if 0 <= token < tk.N_VOCAB:
            return self._tables.token_text[token]
        return None

    def _token_bytes(self, tokens: Sequence[int]) -> bytes | None:
        """Concatenated bytes, or None if any id is outside the vocabulary."""
        if any(not 0 <= t < tk.N_VOCAB for t in tokens):
            return None
        table = self._tables.token_bytes
        return b"".join([table[t] for t in tokens])

    @property
    def name(self) -> str:
        return self._name

    @functools.cached_property
    def special_tokens_set(self) -> set[str]:
        return set(self._core.special_tokens_set)

    # -- rendering -----------------------------------------------------------------------------

    def render_conversation_for_completion(
        self,
        conversation: Conversation,
        next_turn_role: Role,
        config: RenderConversationConfig | None = None,
    ) -> list[int]:
        role = next_turn_role.value
        try:
            tokens = self._renderer.conversation(conversation, config or _DEFAULT_CONFIG)
        except (RenderError, InvalidJSON) as exc:
            _raise_if_invalid_json(conversation.to_json, "conversation", exc)
            raise HarmonyError(str(exc)) from None
        tokens.append(tk.START)
        tokens += self._renderer.piece(role)
        return tokens

    def render_conversation(
        self, conversation: Conversation, config: RenderConversationConfig | None = None
    ) -> list[int]:
        try:
            return self._renderer.conversation(conversation, config or _DEFAULT_CONFIG)
        except (RenderError, InvalidJSON) as exc:
            _raise_if_invalid_json(conversation.to_json, "conversation", exc)
            raise RuntimeError(str(exc)) from None

    def render_conversation_for_training(
        self, conversation: Conversation, config: RenderConversationConfig | None = None
    ) -> list[int]:
        tokens = self.render_conversation(conversation, config)
        messages = conversation.messages
        if messages and messages[-1].author.role is Role.ASSISTANT:
            if messages[-1].channel == "final" and tokens:
                tokens[-1] = tk.RETURN
        return tokens

    def render(self, message: Message, render_options: RenderOptions | None = None) -> list[int]:
        function_tools = render_options.conversation_has_function_tools if render_options else False
        try:
            return self._renderer.message(message, function_tools)
        except (RenderError, InvalidJSON) as exc:
            _raise_if_invalid_json(message.to_json, "message", exc)
            raise RuntimeError(str(exc)) from None

    # -- parsing -------------------------------------------------------------------------------

    def parse_messages_from_completion_tokens(
        self, tokens: Sequence[int], role: Role | None = None, *, strict: bool = True
    ) -> list[Message]:
        tokens = as_tokens(tokens)
        parser = StreamableParser(self, role, strict=strict)
        for token in tokens:
            parser.process(token)
        parser.process_eos()
        return parser.messages

    # -- tokens --------------------------------------------------------------------------------

    def decode_utf8(self, tokens: Sequence[int]) -> str:
        """Decode strictly: invalid UTF-8 or an unknown id raises HarmonyError."""
        tokens = as_tokens(tokens)
        for token in tokens:
            if not 0 <= token < tk.N_VOCAB:
                raise HarmonyError(
                    "Could not decode tokens: Invalid token error: "
                    f"Invalid token for decoding: {token}"
                )
        data = self._token_bytes(tokens) or b""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data":
                detail = f"incomplete utf-8 byte sequence from index {exc.start}"
            else:
                detail = (
                    f"invalid utf-8 sequence of {exc.end - exc.start} bytes from index {exc.start}"
                )
            raise HarmonyError(
                f"Could not decode tokens: Invalid utf-8 sequence: {detail}"
            ) from None

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        tokens = as_tokens(tokens)
        for token in tokens:
            if not 0 <= token < tk.N_VOCAB:
                raise HarmonyError(f"Invalid token for decoding: {token}")
        return (self._token_bytes(tokens) or b"").decode("utf-8", errors=errors)

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = set(),  # noqa: B006 (upstream API)
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """tiktoken's `encode` semantics; disallowed special-token text raises HarmonyError."""
        if allowed_special == "all":
            allowed_special = self.special_tokens_set
        if disallowed_special == "all":
            disallowed_special = self.special_tokens_set - set(allowed_special)
        if disallowed_special:
            match = _special_token_regex(frozenset(disallowed_special)).search(text)
            if match:
                raise_disallowed_special_token(match.group())
        try:
            return self._core.encode(
                text, allowed_special=set(allowed_special), disallowed_special=()
            )
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return self._core.encode(
                text, allowed_special=set(allowed_special), disallowed_special=()
            )

    def is_special_token(self, token: int) -> bool:
        return as_token(token) in self._special_ids

    def special_token_ids(self) -> frozenset[int]:
        """Every special token id (an extension: a server checks each generated token)."""
        return self._special_ids

    def stop_tokens(self) -> list[int]:
        return list(_STOP_TOKENS)

    def stop_tokens_for_assistant_actions(self) -> list[int]:
        return list(_ACTION_STOP_TOKENS)


@functools.lru_cache(maxsize=1)
def _shared_encoding() -> HarmonyEncoding:
    return HarmonyEncoding(str(HarmonyEncodingName.HARMONY_GPT_OSS))


def load_harmony_encoding(name: str | HarmonyEncodingName) -> HarmonyEncoding:
    """The encoding named `name`; the vocabulary is loaded once per process and shared."""
    if not isinstance(name, str):
        name = str(name)
    if name != HarmonyEncodingName.HARMONY_GPT_OSS.value:
        raise ValueError(f"Invalid HarmonyEncodingName: {name}")
    return _shared_encoding()
