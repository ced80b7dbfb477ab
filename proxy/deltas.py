"""One choice's generated tokens -> OpenAI deltas, through a recovering Harmony parser.

Every token id is pushed into its own `StreamableParser(recover=True)` (engines hand over several
tokens per chunk; taking only the chunk's last delta lost text in vLLM <= 0.11.0), and each
token's text is routed by the message it belongs to (serving-anchors §1.4):

* a recipient naming a function (`functions.x`, a bare `x`, on any channel) -> `tool_calls`:
  the first fragment carries `id`, `type` and the client's exact `name`, later ones only
  argument pieces;
* channel `analysis` -> `reasoning` (mirrored as `reasoning_content` by the caller's choice);
* `final`, commentary without recipient (preambles), and text the parser could only recover
  (no header, garbled header) -> `content`.

Malformed output never raises: the parser recovers, and when a message completes with more text
than was streamed (a recovery flush), the missing tail is emitted from the completed message.
Stop strings cut final-channel text only; text that could be the start of a stop string is held
back until it cannot be. Generation for the choice ends at the first stop token.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

from harmony import HarmonyEncoding, Role, StreamableParser, StreamState
from proxy.api_models import Delta, FunctionCallDelta, ToolCallDelta
from proxy.tool_names import ToolNames, function_name

_ALPHABET = string.ascii_letters + string.digits


def new_tool_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


@dataclass
class _ToolCall:
    index: int
    message_index: int
    id: str
    name: str
    arguments: str = ""


@dataclass
class _Pending:
    """Delta pieces gathered while feeding one chunk of tokens."""

    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[ToolCallDelta] = field(default_factory=list)


class DeltaAssembler:
    """Turns one choice's token ids into `Delta`s; one instance (and parser) per choice."""

    def __init__(
        self,
        encoding: HarmonyEncoding,
        names: ToolNames,
        *,
        stop_token_ids: tuple[int, ...],
        stop_strings: tuple[str, ...] = (),
        drop_tool_calls: bool = False,
    ) -> None:
        self._encoding = encoding
        self._parser = StreamableParser(encoding, Role.ASSISTANT, recover=True)
        self._names = names
        self._stop_token_ids = frozenset(stop_token_ids)
        self._stop_strings = tuple(s for s in stop_strings if s)
        self._drop_tool_calls = drop_tool_calls
        self._kind_of_last: dict[str, int] = {}
        self._final_text = ""
        self._final_sent = 0
        self._pending = _Pending()
        self.tool_calls: list[_ToolCall] = []
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        # Set when the choice is over: a stop token was generated or a stop string matched.
        self.done = False
        self.stopped_by_string = False
        # Positions (in the last fed chunk) of tokens that added answer text: their logprobs
        # are shown; reasoning and tool-call tokens' are not.
        self.content_positions: list[int] = []
        self._position: int | None = None

    @property
    def recoveries(self) -> list[str]:
        return list(self._parser.recoveries)

    def feed(self, token_ids: list[int]) -> Delta | None:
        """Parse new tokens; return what they add to the response (None if nothing visible)."""
        self.completion_tokens += len(token_ids)
        self.content_positions = []
        for position, token in enumerate(token_ids):
            if self.done:
                break
            self._position = position
            self._feed_token(token)
            if token in self._stop_token_ids:
                self.done = True
        return self._take()

    def finish(self) -> Delta | None:
        """The engine is done with this choice: close the parser and flush held-back text."""
        self._position = None
        self.content_positions = []
        if not self.stopped_by_string:
            before = len(self._parser.messages)
            self._parser.process_eos()
            self._open_empty_tool_calls(before)
        self.done = True
        self._release_final(hold=False)
        return self._take()

    # ------------------------------------------------------------------ per token

    def _feed_token(self, token: int) -> None:
        parser = self._parser
        before = len(parser.messages)
        parser.process(token)
        delta = parser.last_content_delta
        in_content = parser.state == StreamState.CONTENT
        if delta:
            if len(parser.messages) > before and not in_content:
                # The token completed its message (a recovery can flush text this way).
                message = parser.messages[-1]
                self._route(len(parser.messages) - 1, message.channel, message.recipient, delta)
            else:
                index = len(parser.messages)
                self._route(index, parser.current_channel, parser.current_recipient, delta)
        if (
            in_content
            and self._kind(parser.current_channel, parser.current_recipient) == "reasoning"
        ):
            if not self._encoding.is_special_token(token):
                self.reasoning_tokens += 1
        self._open_empty_tool_calls(before)

    def _open_empty_tool_calls(self, before: int) -> None:
        """A call whose message completed with no argument text still gets its tool_call.

        Text needs no such pass: the recovering parser reports every piece of a message's text
        as a delta, including text that only materialises when the message ends.
        """
        messages = self._parser.messages
        for index in range(before, len(messages)):
            message = messages[index]
            if self._kind(message.channel, message.recipient) == "tool":
                self._route(index, message.channel, message.recipient, "")

    # ------------------------------------------------------------------ routing

    def _kind(self, channel: str | None, recipient: str | None) -> str:
        if function_name(recipient, self._names) is not None:
            return "tool"
        if channel == "analysis":
            return "reasoning"
        return "final" if channel in ("final", None) else "content"

    def _route(self, index: int, channel: str | None, recipient: str | None, text: str) -> None:
        if self.stopped_by_string:
            return
        kind = self._kind(channel, recipient)
        if kind == "tool":
            self._tool_text(index, recipient, text)
            return
        if not text:
            return
        # Separate consecutive messages of the same kind, as a non-streaming join would.
        family = "reasoning" if kind == "reasoning" else "content"
        last = self._kind_of_last.get(family)
        if last is not None and last != index:
            text = "\n" + text
        self._kind_of_last[family] = index
        if kind != "reasoning" and self._position is not None:
            if not self.content_positions or self.content_positions[-1] != self._position:
                self.content_positions.append(self._position)
        if kind == "reasoning":
            self._pending.reasoning.append(text)
        elif kind == "final":
            self._final_text += text
            self._release_final(hold=True)
        else:
            self._release_final(hold=False)
            self._pending.content.append(text)

    def _tool_text(self, index: int, recipient: str | None, text: str) -> None:
        if self._drop_tool_calls:
            return
        call = self.tool_calls[-1] if self.tool_calls else None
        if call is None or call.message_index != index:
            name = self._names.to_client(function_name(recipient, self._names) or "")
            call = _ToolCall(len(self.tool_calls), index, new_tool_call_id(), name)
            self.tool_calls.append(call)
            self._pending.tool_calls.append(
                ToolCallDelta(
                    index=call.index,
                    id=call.id,
                    type="function",
                    function=FunctionCallDelta(name=name, arguments=text),
                )
            )
        elif text:
            pending = self._pending.tool_calls
            if pending and pending[-1].index == call.index:
                pending[-1].function.arguments = (pending[-1].function.arguments or "") + text
            else:
                pending.append(
                    ToolCallDelta(index=call.index, function=FunctionCallDelta(arguments=text))
                )
        call.arguments += text

    def _release_final(self, hold: bool) -> None:
        """Move final text to the pending content, cutting at a stop string, holding a prefix."""
        text, sent = self._final_text, self._final_sent
        if sent >= len(text):
            return
        cut = None
        for stop in self._stop_strings:
            at = text.find(stop, max(0, sent - len(stop) + 1))
            if at != -1 and (cut is None or at < cut):
                cut = at
        if cut is not None:
            self._pending.content.append(text[sent:cut])
            self._final_sent = len(text)
            self.stopped_by_string = self.done = True
            return
        end = len(text)
        if hold and self._stop_strings:
            end = max(sent, len(text) - _longest_partial_stop(text, self._stop_strings))
        self._pending.content.append(text[sent:end])
        self._final_sent = end

    def _take(self) -> Delta | None:
        pending, self._pending = self._pending, _Pending()
        content = "".join(pending.content)
        reasoning = "".join(pending.reasoning)
        if not (content or reasoning or pending.tool_calls):
            return None
        return Delta(
            content=content or None,
            reasoning=reasoning or None,
            tool_calls=pending.tool_calls or None,
        )


def _longest_partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best
