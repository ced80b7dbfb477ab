"""Request -> engine sampling parameters, and the request fields this server refuses.

Budgets follow OpenAI: `max_completion_tokens` wins over the deprecated `max_tokens`; both
count reasoning, tool arguments and the answer. Without either, the rest of the context window
is the budget. Temperature and top_p default to 1.0 (OpenAI's recommendation for gpt-oss).
Stop token ids are always set explicitly (<|return|>, <|call|>, <|endoftext|>); user stop
strings are applied by the parser to final content only, never by the engine (which would fire
them inside reasoning: serving-anchors §1.3).
"""

from __future__ import annotations

from proxy.api.chat_schema import ChatCompletionRequest
from proxy.backends.base import DEFAULT_STOP_TOKEN_IDS, SamplingConfig
from proxy.core.errors import InvalidRequest
from proxy.core.output_rules import OutputRules

MAX_STOP_STRINGS = 4

# Fields that would change the answer if honoured; refusing beats silently ignoring them.
_REFUSED = {
    "functions": "The deprecated `functions` parameter is not supported; use `tools`.",
    "function_call": "The deprecated `function_call` parameter is not supported; use `tool_choice`.",
    "audio": "Audio output is not supported by this model.",
    "prediction": "Predicted outputs are not supported.",
    "web_search_options": "Web search is not supported on chat completions.",
}


def refuse_unsupported(request: ChatCompletionRequest) -> None:
    """400 for fields we cannot honour (unknown harmless fields like `user` are accepted)."""
    extra = request.model_extra or {}
    for name, message in _REFUSED.items():
        if extra.get(name) is not None:
            raise InvalidRequest(message, param=name)
    if extra.get("logit_bias"):
        raise InvalidRequest("logit_bias is not supported.", param="logit_bias")
    modalities = extra.get("modalities")
    if modalities and set(modalities) - {"text"}:
        raise InvalidRequest("Only text output is supported.", param="modalities")
    if request.ignore_eos:
        raise InvalidRequest(
            "ignore_eos is refused: Harmony ends messages with stop tokens, and generating past "
            "<|return|> produces output no client can parse.",
            param="ignore_eos",
        )
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("top_logprobs requires `logprobs: true`.", param="top_logprobs")


def stop_strings(request: ChatCompletionRequest) -> tuple[str, ...]:
    stop = request.stop
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > MAX_STOP_STRINGS:
        raise InvalidRequest(
            f"`stop` takes at most {MAX_STOP_STRINGS} strings, got {len(stops)}.", param="stop"
        )
    return tuple(s for s in stops if s)


def sampling_config(
    request: ChatCompletionRequest,
    *,
    prompt_tokens: int,
    max_model_len: int,
    rules: OutputRules,
    default_max_tokens: int | None = None,
) -> SamplingConfig:
    """Engine parameters for all `n` choices of `request`, validated against the context."""
    room = max_model_len - prompt_tokens
    if room <= 0:
        raise InvalidRequest(
            f"The prompt is {prompt_tokens} tokens long, which leaves no room in the model's "
            f"{max_model_len}-token context; shorten the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    param = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None and max_tokens > room:
        raise InvalidRequest(
            f"{param} is {max_tokens}, but the prompt is {prompt_tokens} tokens and the "
            f"context is {max_model_len}: at most {room} tokens can be generated.",
            param=param,
            code="context_length_exceeded",
        )
    if max_tokens is None:
        max_tokens = min(room, default_max_tokens) if default_max_tokens else room
    return SamplingConfig(
        max_tokens=max_tokens,
        n=request.n,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        seed=request.seed,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        stop_token_ids=DEFAULT_STOP_TOKEN_IDS,
        structured_outputs=rules.structured_outputs,
        # 0 still returns the sampled token's own log-probability.
        logprobs=(request.top_logprobs or 0) if request.logprobs else None,
        top_k=request.top_k if request.top_k and request.top_k > 0 else 0,
        min_p=request.min_p or 0.0,
        repetition_penalty=(
            1.0 if request.repetition_penalty is None else request.repetition_penalty
        ),
    )
