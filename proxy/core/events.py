"""The API-neutral events one choice's generation turns into.

`DeltaAssembler` (proxy/core/assembler.py) parses engine tokens with Harmony's recovering parser and says
what they mean as these events; `CompletionRun` (proxy/core/run.py) wraps them per engine step.
Chat completions renders them as `chat.completion.chunk` deltas (proxy/api/chat_stream.py), the
Responses API as output items and named SSE events (proxy/api/responses/), and both non-streamed
answers are the same events folded. Neither API re-parses anything.

`item` is the Harmony message the piece belongs to (its index in the parse): one analysis message
is one reasoning item, one final message or preamble one message item, one call one function
call item. Events are small slotted dataclasses because several are made per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TextKind = Literal["reasoning", "content"]


@dataclass(slots=True)
class Text:
    """Visible text: `reasoning` (analysis channel) or `content`: the final answer (`final`),
    or other assistant text (a commentary preamble, a call to an undeclared tool, text
    recovered from a garbled header), which the Responses API marks `phase: "commentary"`."""

    kind: TextKind
    item: int
    text: str
    final: bool = True


@dataclass(slots=True)
class CallStart:
    """A call to a declared function; `call` is its position among the choice's calls."""

    call: int
    item: int
    id: str
    name: str
    arguments: str = ""


@dataclass(slots=True)
class CallArguments:
    """More argument text of call `call`."""

    call: int
    text: str


@dataclass(slots=True)
class CallEnd:
    """Call `call`'s message ended: by its `<|call|>` (`complete`), or cut off (max tokens,
    an engine stop) with its arguments possibly unfinished."""

    call: int
    complete: bool = True


Event = Text | CallStart | CallArguments | CallEnd


@dataclass(slots=True)
class Step:
    """What one engine output added to choice `choice`: its events, and its end if it ended.

    `logprobs` are the answer tokens' log-probabilities gathered since the last step that carried
    some (only when requested); `finish` is the OpenAI finish_reason once the choice is over.
    `more`: the run yields its next step (or ends) right after this one, without waiting for
    the engine, so a writer may send both in one socket write (a write costs the server more
    than the bytes in it: a finish goes out with the text of its output, usage and `[DONE]`).
    The run's first step always comes with its first output, even with no events, so the
    writers' opening events go out then.
    """

    choice: int
    events: list[Event] = field(default_factory=list)
    finish: str | None = None
    logprobs: list | None = None
    more: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one run (all choices); each API names them its own way."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    # Prompt tokens served from the engine's prefix cache; None when the engine did not say.
    cached_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
