"""Request -> engine sampling parameters, and the request fields this server refuses.

Budgets follow OpenAI: `max_completion_tokens` wins over the deprecated `max_tokens`; both
count reasoning, tool arguments and the answer. Without either, the rest of the context window
is the budget. Temperature and top_p default to 1.0 (OpenAI's recommendation for gpt-oss).
Stop token ids are always set explicitly (<|return|>, <|call|>, <|endoftext|>); user stop
strings are applied by the parser to final content only, never by the engine (which would fire
them inside reasoning: serving-anchors §1.3).
"""

from __future__ import annotations

from proxy.backends.base import DEFAULT_STOP_TOKEN_IDS, SamplingConfig
from proxy.core.errors import InvalidRequest
from proxy.core.output_rules import OutputRules
from proxy.core.request import GenerationRequest


def check_room(request: GenerationRequest, prompt_tokens: int, max_model_len: int) -> None:
    """400 `context_length_exceeded` when the prompt leaves no room, or less than the request's
    own budget. Planning checks this right after the render, before building a grammar."""
    room = max_model_len - prompt_tokens
    if room <= 0:
        raise InvalidRequest(
            f"The prompt is {prompt_tokens} tokens long, which leaves no room in the model's "
            f"{max_model_len}-token context; shorten the messages.",
            param=request.names.messages,
            code="context_length_exceeded",
        )
    max_tokens = request.sampling.max_tokens
    if max_tokens is not None and max_tokens > room:
        param = request.names.max_tokens
        raise InvalidRequest(
            f"{param} is {max_tokens}, but the prompt is {prompt_tokens} tokens and the "
            f"context is {max_model_len}: at most {room} tokens can be generated.",
            param=param,
            code="context_length_exceeded",
        )


def sampling_config(
    request: GenerationRequest,
    *,
    prompt_tokens: int,
    max_model_len: int,
    rules: OutputRules,
    default_max_tokens: int | None = None,
) -> SamplingConfig:
    """Engine parameters for all `n` choices of `request`, validated against the context."""
    check_room(request, prompt_tokens, max_model_len)
    wanted = request.sampling
    max_tokens = wanted.max_tokens
    room = max_model_len - prompt_tokens
    if max_tokens is None:
        max_tokens = min(room, default_max_tokens) if default_max_tokens else room
    return SamplingConfig(
        max_tokens=max_tokens,
        n=wanted.n,
        temperature=1.0 if wanted.temperature is None else wanted.temperature,
        top_p=1.0 if wanted.top_p is None else wanted.top_p,
        seed=wanted.seed,
        presence_penalty=wanted.presence_penalty or 0.0,
        frequency_penalty=wanted.frequency_penalty or 0.0,
        stop_token_ids=DEFAULT_STOP_TOKEN_IDS,
        structured_outputs=rules.structured_outputs,
        logprobs=wanted.logprobs,
        top_k=wanted.top_k if wanted.top_k and wanted.top_k > 0 else 0,
        min_p=wanted.min_p or 0.0,
        repetition_penalty=(
            1.0 if wanted.repetition_penalty is None else wanted.repetition_penalty
        ),
        affinity_key=request.affinity_key,
        cache_salt=request.cache_salt,
    )
