"""One choice's generated tokens -> neutral events (proxy/core/events.py), through a recovering parser.

Every token id is pushed into its own `StreamableParser(recover=True)` (engines hand over several
tokens per chunk; taking only the chunk's last delta lost text in vLLM <= 0.11.0), and each
token's text is routed by the message it belongs to (serving-anchors §1.4):

* a recipient naming a *declared* function (`functions.x` or a bare `x`, on any channel) -> a
  call: `CallStart` with its id and the client's exact `name` (as soon as the header names the
  function), `CallArguments` pieces, `CallEnd` when its message completes;
* any other tool address (`functions.calculator` nobody declared, the built-in `python`,
  `browser.search`) -> `content`, counted as a tool-call recovery: a client never sees a call it
  did not declare (the Agents SDK raises on one);
* channel `analysis` -> `reasoning` text;
* `final`, commentary without recipient (preambles), and text the parser could only recover
  (no header, garbled header) -> `content` text.

Each event names the Harmony message (`item`) it came from, so the Responses API can make one
output item per message while chat completions joins them into one `content` string.

When the engine's grammar does not guarantee calls (`OutputRules.calls_enforced` false), a
declared call is held until its message completes and is sent only if its arguments parse as a
JSON object; otherwise its text becomes text of its channel. Under the grammar, calls stream as generated
(only a completion cut by `max_tokens` can then end inside the arguments, with finish_reason
`length`). `max_tool_calls` (1 for `parallel_tool_calls: false`) ends the choice after that many.

Malformed output never raises: the parser recovers and reports every piece of text as a delta.
Stop strings cut final-channel text only (within one message); text that could be the start of
a stop string is held back until it cannot be. Generation for the choice ends at the first stop token.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass, field

from harmony import HarmonyEncoding, Role, StreamableParser, StreamState
from proxy.core.events import CallArguments, CallEnd, CallStart, Event, Text, TextKind
from proxy.core.stop_strings import FinalText, StopMatcher
from proxy.core.tool_names import ToolNames, classify_recipient

_ALPHABET = string.ascii_letters + string.digits


def new_tool_call_id() -> str:
    """`call_` and 24 random letters and digits (OpenAI's shape). Drawn from one read of the
    OS's random source, not one per character (`secrets.choice` reads it 24 times): bytes below
    248 (4 x 62) map evenly onto the 62 characters, the rest are dropped."""
    chars: list[str] = []
    while len(chars) < 24:
        chars.extend(_ALPHABET[b % 62] for b in secrets.token_bytes(32) if b < 248)
    return "call_" + "".join(chars[:24])


@dataclass
class _ToolCall:
    """A call sent (or, unenforced, being held) for one tool-call message."""

    message_index: int
    channel: str | None
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    # Position in the response's `tool_calls`; None while a held call is not yet sent.
    index: int | None = None


class DeltaAssembler:
    """Turns one choice's token ids into events; one instance (and parser) per choice."""

    def __init__(
        self,
        encoding: HarmonyEncoding,
        names: ToolNames,
        *,
        stop_token_ids: tuple[int, ...],
        stop_strings: tuple[str, ...] = (),
        tools_callable: bool = True,
        calls_enforced: bool = False,
        max_tool_calls: int | None = None,
    ) -> None:
        self._encoding = encoding
        self._parser = StreamableParser(encoding, Role.ASSISTANT, recover=True)
        self._names = names
        self._stop_token_ids = frozenset(stop_token_ids)
        self._special_ids = encoding.special_token_ids()
        # Runs of plain text tokens are parsed at once (`_feed_text_run`) unless stop strings
        # are watched; a run ends before any special or stop token.
        self._text_runs = not any(stop_strings)
        self._stop_strings = tuple(s for s in stop_strings if s)
        self._tools_callable = tools_callable
        self._calls_enforced = calls_enforced
        self._max_tool_calls = max_tool_calls
        self._kinds: dict[tuple[int, str | None, str | None], tuple[str, str | None]] = {}
        self._stops = tuple(StopMatcher(s) for s in self._stop_strings)
        # Final text of message `_final_item` not yet sent (held back for stop strings).
        self._final_item = -1
        self._final = FinalText(self._stops)
        self._events: list[Event] = []
        self._at_eos = False
        self._call: _ToolCall | None = None
        self._undeclared: set[int] = set()
        self.tool_calls: list[_ToolCall] = []
        # What was repaired about tool calls: "undeclared:<address>", "invalid_arguments:<name>".
        self.tool_call_recoveries: list[str] = []
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        # Set when the choice is over: a stop token was generated, a stop string matched, or
        # the allowed number of tool calls was reached.
        self.done = False
        self.stopped_by_string = False
        self.consumed = 0  # tokens of the last fed chunk that were parsed (the rest: after done)
        # Which stop string it was (the Messages API's `stop_sequence` names it).
        self.stop_string: str | None = None
        # Positions (in the last fed chunk) of tokens that added answer text: their logprobs
        # are shown; reasoning and tool-call tokens' are not.
        self.content_positions: list[int] = []
        self._position: int | None = None
        # The message whose text is streaming, once its route is settled (`_feed_text_run`):
        # its index and its text's `Text.kind` and `Text.final`. Used only while the parser is
        # still in that message (`message_count == index`); an older one is stale, unused.
        self._lane: tuple[int, TextKind, bool] | None = None

    @property
    def recoveries(self) -> list[str]:
        return list(self._parser.recoveries)

    def feed(self, token_ids: list[int]) -> list[Event]:
        """Parse new tokens; return what they add to the response (maybe nothing)."""
        self.content_positions = []
        parser = self._parser
        consumed = position = 0
        end = len(token_ids)
        while position < end and not self.done:
            if self._text_runs and parser.state is StreamState.CONTENT:
                taken = self._feed_text_run(token_ids, position)
                if taken:
                    position += taken
                    consumed += taken
                    continue
            token = token_ids[position]
            consumed += 1
            self._position = position
            self._feed_token(token)
            if token in self._stop_token_ids:
                self.done = True
            position += 1
        # Tokens after the choice ended (a stop string, the tool-call limit) are not its own,
        # however the engine's outputs were cut into chunks.
        self.completion_tokens += consumed
        self.consumed = consumed
        return self._take()

    def finish(self) -> list[Event]:
        """The engine is done with this choice: close the parser and flush held-back text."""
        self._position = None
        self.content_positions = []
        if not self.stopped_by_string:
            before = self._parser.message_count
            self._parser.process_eos()
            self._at_eos = True  # a call closed now never reached its <|call|>
            self._completed(before)
        self.done = True
        self._release_final(hold=False)
        return self._take()

    # ------------------------------------------------------------------ per token

    def _feed_text_run(self, token_ids: list[int], start: int) -> int:
        """The plain text tokens of the current message from `start` on, routed as one piece
        of text: what routing them one by one would add, joined, for one call instead of one
        per token (chat joined a step's text anyway; the Responses and Messages APIs now send
        one delta per run, not per token). Returns how many were taken.

        Only without stop strings: one can end the choice on any token of the run, and the
        tokens after it are not the choice's. Nothing else can end it inside a message's text
        (stop tokens and special tokens are never part of a run)."""
        parser = self._parser
        taken, text = parser.process_text_run(token_ids, start, self._stop_token_ids)
        if not taken:
            return 0
        index = parser.message_count
        lane = self._lane
        kind: str
        if lane is not None and lane[0] == index:
            # Routed before (below): one `Text` as `_text` makes it, without routing it again
            # (most tokens of an answer: one run per engine step).
            _, kind, final = lane
            self._events.append(Text(kind, index, text, final))
        else:
            channel, recipient = parser.current_channel, parser.current_recipient
            kind, _ = self._kind(index, channel, recipient)
            self._position = None  # positions are added here, all at once
            self._route(index, channel, recipient, text)
            if kind != "tool" and not self.done:
                # Routed as text from now on (`_text`): its next tokens can skip the routing.
                if kind == "reasoning":
                    self._lane = (index, "reasoning", True)
                else:  # (`Text.final` as `_text` sets it: the final channel's text, not a preamble)
                    self._lane = (index, "content", kind == "final")
        if kind == "reasoning":
            self.reasoning_tokens += taken
        elif kind != "tool":  # answer text: these tokens' logprobs are shown
            self.content_positions.extend(range(start, start + taken))
        return taken

    def _feed_token(self, token: int) -> None:
        parser = self._parser
        before = parser.message_count
        parser.process(token)
        delta = parser.last_content_delta
        in_content = parser.state is StreamState.CONTENT
        completed = parser.message_count > before
        if delta:
            if completed and not in_content:
                # The token completed its message (a recovery can flush text this way).
                channel, recipient = parser.message_address(parser.message_count - 1)
                self._route(before, channel, recipient, delta)
            else:
                index = parser.message_count
                self._route(index, parser.current_channel, parser.current_recipient, delta)
        if in_content:
            index = parser.message_count
            kind, _ = self._kind(index, parser.current_channel, parser.current_recipient)
            if kind == "tool" and (self._call is None or self._call.message_index != index):
                # The header named a declared function: the client learns of the call now.
                self._route(index, parser.current_channel, parser.current_recipient, "")
            elif kind == "reasoning" and token not in self._special_ids:
                self.reasoning_tokens += 1
        if completed:
            self._completed(before)

    def _completed(self, before: int) -> None:
        """Settle tool calls whose messages completed (held ones, or ones with no text)."""
        parser = self._parser
        for index in range(before, parser.message_count):
            channel, recipient = parser.message_address(index)
            if self._kind(index, channel, recipient)[0] != "tool":
                continue
            if self._call is None or self._call.message_index != index:
                self._route(index, channel, recipient, "")
            self._close_call()

    # ------------------------------------------------------------------ routing

    def _kind(
        self, index: int, channel: str | None, recipient: str | None
    ) -> tuple[str, str | None]:
        """("tool", client name) | ("undeclared", address) | ("reasoning"|"final"|"content", None).

        Computed once per message header: this runs for every token.
        """
        key = (index, channel, recipient)
        kind = self._kinds.get(key)
        if kind is None:
            address = classify_recipient(recipient, self._names, channel)
            if address is not None and address[0] == "tool" and not self._tools_callable:
                address = ("undeclared", address[1])  # tool_choice "none": nothing is callable
            if address is not None:
                kind = address
            elif channel == "analysis":
                kind = ("reasoning", None)
            else:
                kind = ("final" if channel in ("final", None) else "content", None)
            self._kinds[key] = kind
        return kind

    def _route(self, index: int, channel: str | None, recipient: str | None, text: str) -> None:
        if self.stopped_by_string:
            return
        kind, target = self._kind(index, channel, recipient)
        if kind == "tool":
            assert target is not None
            self._tool_text(index, channel, target, text)
            return
        if kind == "undeclared" and index not in self._undeclared:
            self._undeclared.add(index)
            self.tool_call_recoveries.append(f"undeclared:{target}")
        if not text:
            return
        self._text(index, "final" if kind == "final" else kind, text)

    def _text(self, index: int, kind: str, text: str) -> None:
        """Reasoning, final or other content text of message `index`."""
        if index != self._final_item:
            # Held-back final text is sent before anything of a later message.
            self._release_final(hold=False)
        if kind != "reasoning" and self._position is not None:
            if not self.content_positions or self.content_positions[-1] != self._position:
                self.content_positions.append(self._position)
        if kind == "reasoning":
            self._events.append(Text("reasoning", index, text))
        elif kind == "final":
            if index != self._final_item:
                self._final_item, self._final = index, FinalText(self._stops)
            self._final.add(text)
            self._release_final(hold=True)
        else:
            self._events.append(Text("content", index, text, final=False))

    def _tool_text(self, index: int, channel: str | None, name: str, text: str) -> None:
        call = self._call
        if call is None or call.message_index != index:
            call = self._call = _ToolCall(index, channel, new_tool_call_id(), name)
            if self._calls_enforced:
                self._send_call(call, text)
                call.arguments.append(text)
                return
        call.arguments.append(text)
        if call.index is None or not text:
            return  # held until complete
        self._events.append(CallArguments(call.index, text))

    def _send_call(self, call: _ToolCall, arguments: str) -> None:
        self._release_final(hold=False)
        call.index = len(self.tool_calls)
        self.tool_calls.append(call)
        self._events.append(
            CallStart(call.index, call.message_index, call.id, call.name, arguments)
        )

    def _close_call(self) -> None:
        """The current call's message is complete: send a held call if it is valid, else text."""
        call, self._call = self._call, None
        if call is None:
            return
        arguments = "".join(call.arguments)
        freeform = call.name in self._names.freeform
        if call.index is None:
            if freeform:
                self._send_call(call, arguments)
            elif _is_json_object(arguments.strip() or "{}"):
                self._send_call(call, arguments.strip() or "{}")
            else:
                # Not a call after all (a garbled header can look like one): the text keeps
                # its channel's meaning, so reasoning never leaks into content.
                self.tool_call_recoveries.append(f"invalid_arguments:{call.name}")
                kind = {"analysis": "reasoning", "final": "final", None: "final"}
                self._text(call.message_index, kind.get(call.channel, "content"), arguments)
                return
        elif arguments and not freeform and not _is_json_object(arguments):
            # Only a completion cut inside the arguments gets here under the grammar.
            self.tool_call_recoveries.append(f"invalid_arguments:{call.name}")
        assert call.index is not None
        self._events.append(CallEnd(call.index, complete=not self._at_eos))
        if self._max_tool_calls is not None and len(self.tool_calls) >= self._max_tool_calls:
            self.done = True

    def _release_final(self, hold: bool) -> None:
        """Send final text not yet sent, cutting at a stop string, holding a possible prefix."""
        text, stopped = self._final.release(hold)
        if text:
            self._events.append(Text("content", self._final_item, text))
        if stopped:
            self.stopped_by_string = self.done = True
            self.stop_string = self._final.matched

    def _take(self) -> list[Event]:
        events, self._events = self._events, []
        return events


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
