"""The contract between the HTTP layer and an engine: token ids in, token ids out.

The proxy renders prompts and parses completions itself (Harmony), so an engine only has to
generate tokens. Keeping the contract this small is what lets the same server run the real vLLM
engine, a scripted backend for fault injection, or a remote token-level engine later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from prometheus_client.metrics_core import Metric

FinishReason = Literal["stop", "length", "abort", "error"]

# <|return|>, <|call|>, <|endoftext|>: set explicitly on every request rather than trusting a
# checkpoint's generation_config (vLLM >= 0.25 dropped its own injection of these ids).
DEFAULT_STOP_TOKEN_IDS: tuple[int, ...] = (200002, 200012, 199999)


@dataclass(frozen=True)
class SamplingConfig:
    """Engine-neutral sampling parameters for one request (all `n` choices)."""

    max_tokens: int
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop_token_ids: tuple[int, ...] = DEFAULT_STOP_TOKEN_IDS
    # Keyword arguments for the engine's structured-output parameters (for vLLM:
    # `StructuredOutputsParams(**structured_outputs)`, e.g. {"structural_tag": "<json>"}).
    structured_outputs: dict[str, Any] | None = None
    # Ask for this many top log-probabilities per generated token (None: none).
    logprobs: int | None = None
    # vLLM sampling extensions: 0 top_k and 0 min_p disable them; 1.0 is no penalty.
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    # Not sampling: the client's cache key (Responses `prompt_cache_key`), which a replica pool
    # routes by so one session stays on the replica holding its prefix. Engines ignore it.
    affinity_key: str | None = None
    # Not sampling: vLLM's `cache_salt` (proxy/core/cache_salt.py). Prompts under different
    # salts share no prefix-cache blocks; None shares the cache with every unsalted request.
    cache_salt: str | None = None


@dataclass(slots=True)
class GenerationChunk:
    """New tokens for one choice; a chunk may hold several tokens (engines batch deltas)."""

    index: int
    token_ids: list[int]
    # Set on the last chunk of a choice.
    finish_reason: FinishReason | None = None
    # The stop token id that ended the choice, when it ended on one.
    stop_token_id: int | None = None
    # Prompt tokens served from the engine's prefix cache (first chunk only; None if unknown).
    cached_prompt_tokens: int | None = None
    logprobs: list[dict[int, float]] | None = field(default=None, repr=False)
    # The backend already holds this request's next chunk: reading it will not wait. The run
    # then merges the two before writing (proxy/core/coalesce.py); False promises nothing.
    more_ready: bool = False


class EngineError(RuntimeError):
    """The engine failed while generating (the request cannot continue)."""


class EngineNotReady(RuntimeError):
    """The engine is still loading, or has died; the request should be retried later."""


class EngineRefused(Exception):
    """The engine refused the request as invalid (vLLM's validation, a replica's 400): the
    client's error, answered 400 with the engine's message."""


@runtime_checkable
class EngineBackend(Protocol):
    """What the HTTP layer needs from an engine."""

    @property
    def model_name(self) -> str:
        """The model id served under /v1/models."""
        ...

    @property
    def max_model_len(self) -> int:
        """Context length: prompt plus completion tokens."""
        ...

    @property
    def ready(self) -> bool:
        """True once the engine is loaded and healthy."""
        ...

    @property
    def supports_grammar(self) -> bool:
        """Can it enforce structured outputs (grammars)? False: calls are checked afterwards."""
        ...

    @property
    def merges_while_unread(self) -> bool:
        """Does a stream keep generating while nobody reads it, and hand over what it made
        meanwhile as one output (vLLM's per-request output collector)? Then a run behind a
        busy loop reads it once per hold (proxy/core/pacing.py); otherwise (an engine that makes
        its next output only when asked, or a replica's events, separate even in a burst) it
        reads ahead in a task of its own."""
        ...

    def collect(self) -> Iterable[Metric]:
        """Scrape-time metrics of its own (a pool's per-replica figures); none for most."""
        ...

    async def start(self) -> None:
        """Load the engine. Idempotent: a second call returns at once."""
        ...

    def generate(
        self, prompt_token_ids: list[int], sampling: SamplingConfig, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """Stream the completion of every choice.

        Raises EngineNotReady before the engine is loaded, EngineRefused when it refuses the
        request, and EngineError if it fails midway. Closing the iterator early (client
        disconnect) must abort the request in the engine: that close is the one abort path.
        """
        ...

    async def abort(self, request_id: str) -> None:
        """Stop generating for `request_id` (no-op if it already finished)."""
        ...

    async def shutdown(self) -> None:
        """Release the engine (processes, memory)."""
        ...
