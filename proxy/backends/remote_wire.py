"""The two wire formats a remote vLLM speaks for token ids in, token ids out.

- `/inference/v1/generate` (`vllm serve --enable-scale-out` or `--tokens-only`): token ids in,
  streamed DELTA token ids out, vLLM's own `SamplingParams` as JSON. Preferred: no text at all
  crosses the wire, and `/inference/v1/abort_requests` stops a request by id.
- `/v1/completions` with `prompt` as token ids and `return_token_ids` (every vLLM since 0.10.2):
  the text in its chunks is ignored; only `token_ids` are read.

Both stream `data: {json}` lines ending with `data: [DONE]`; an error after the response started
arrives as `data: {"error": {...}}`. This module only builds bodies and parses chunks (pure
functions, no I/O), so the HTTP client in `remote.py` stays about connections and failures.
`SseLines` splits the streamed bytes into lines for it, and `ReadyChunks` turns each block of
lines into the chunks that are ready together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from proxy.backends.base import FinishReason, GenerationChunk, SamplingConfig

Protocol = Literal["generate", "completions"]

GENERATE_PATH = "/inference/v1/generate"
ABORT_PATH = "/inference/v1/abort_requests"
COMPLETIONS_PATH = "/v1/completions"

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "abort": "abort",
    "error": "error",
}


def engine_request_id(request_id: str) -> str:
    """The id vLLM's generate endpoint gives our request inside its engine (what abort takes)."""
    return f"generate-tokens-{request_id}"


def _sampling_fields(sampling: SamplingConfig) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "n": sampling.n,
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        # Explicit on every request: the server's generation_config must not decide where
        # a Harmony message ends.
        "stop_token_ids": list(sampling.stop_token_ids),
        "skip_special_tokens": False,
    }
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    if sampling.logprobs is not None:
        fields["logprobs"] = sampling.logprobs
    if sampling.structured_outputs is not None:
        fields["structured_outputs"] = dict(sampling.structured_outputs)
    return fields


def _salted(body: dict[str, Any], sampling: SamplingConfig) -> dict[str, Any]:
    """`cache_salt` at the top of either request body (both of vLLM's request models take it
    there, and hash it into the prompt's first prefix-cache block); left out when None."""
    if sampling.cache_salt is not None:
        body["cache_salt"] = sampling.cache_salt
    return body


def generate_body(
    prompt_token_ids: list[int], sampling: SamplingConfig, request_id: str, model: str
) -> dict[str, Any]:
    """The `/inference/v1/generate` request: no detokenization anywhere."""
    params = _sampling_fields(sampling)
    params["detokenize"] = False
    body = {
        "request_id": request_id,
        "model": model,
        "token_ids": list(prompt_token_ids),
        "sampling_params": params,
        "output_mode": "tokens",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return _salted(body, sampling)


def completions_body(
    prompt_token_ids: list[int], sampling: SamplingConfig, request_id: str, model: str
) -> dict[str, Any]:
    """The `/v1/completions` request: token-id prompt, token ids back alongside the text."""
    body = _sampling_fields(sampling)
    body.update(
        {
            "model": model,
            "prompt": list(prompt_token_ids),
            "request_id": request_id,
            "return_token_ids": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    if sampling.logprobs is not None:
        body["return_tokens_as_token_ids"] = True  # "token_id:123" keys, not lossy strings
    return _salted(body, sampling)


@dataclass
class UpstreamError(Exception):
    """An error the replica reported (HTTP status or an error event inside the stream)."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def error_from_json(status: int, payload: Any) -> UpstreamError:
    """`{"error": {"message", "code"}}` (vLLM) or `{"detail": ...}` (FastAPI) -> UpstreamError."""
    message = ""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("detail") or "")
            code = error.get("code")
            if isinstance(code, int) and 400 <= code < 600:
                status = code
        else:
            message = str(error)
    return UpstreamError(status, message or f"upstream HTTP {status}")


def parse_event(line: bytes | str) -> dict[str, Any] | None:
    """One SSE line -> its JSON payload; None for blank lines, comments and `[DONE]`.

    Raises `orjson.JSONDecodeError` (a `json.JSONDecodeError`) on malformed JSON."""
    if isinstance(line, str):
        line = line.encode()
    if not line.startswith(b"data:"):
        return None
    data = line[5:].strip()
    if not data or data == b"[DONE]":
        return None
    payload = orjson.loads(data)
    if isinstance(payload, dict) and "error" in payload and not payload.get("choices"):
        raise error_from_json(500, payload)
    return payload


def cached_tokens(payload: dict[str, Any]) -> int | None:
    """Prompt tokens served from the replica's prefix cache (its final usage chunk)."""
    usage = payload.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens")
    return cached if isinstance(cached, int) else None


def chunks_from_payload(
    payload: dict[str, Any], sampling: SamplingConfig, protocol: Protocol
) -> list[GenerationChunk]:
    """The token deltas of one streamed response chunk (either protocol)."""
    out: list[GenerationChunk] = []
    for choice in payload.get("choices") or []:
        chunk = GenerationChunk(
            index=int(choice["index"]), token_ids=list(choice.get("token_ids") or [])
        )
        reason = choice.get("finish_reason")
        if reason is not None:
            chunk.finish_reason = _FINISH_REASONS.get(str(reason), "stop")
            stop_reason = choice.get("stop_reason")
            if isinstance(stop_reason, int):
                chunk.stop_token_id = stop_reason
            elif (
                chunk.finish_reason == "stop"
                and chunk.token_ids
                and chunk.token_ids[-1] in sampling.stop_token_ids
            ):
                chunk.stop_token_id = chunk.token_ids[-1]
        if sampling.logprobs is not None and choice.get("logprobs"):
            chunk.logprobs = _logprobs(choice["logprobs"], protocol)
        if chunk.token_ids or chunk.finish_reason is not None:
            out.append(chunk)
    return out


def _logprobs(logprobs: dict[str, Any], protocol: Protocol) -> list[dict[int, float]]:
    if protocol == "generate":
        positions = []
        for entry in logprobs.get("content") or []:
            position = {int(entry["token_id"]): float(entry["logprob"])}
            for top in entry.get("top_logprobs") or []:
                position.setdefault(int(top["token_id"]), float(top["logprob"]))
            positions.append(position)
        return positions
    # /v1/completions with return_tokens_as_token_ids: keys are "token_id:123".
    positions = []
    tokens = logprobs.get("tokens") or []
    token_lps = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    for token, lp, top in zip(tokens, token_lps, tops, strict=False):
        position = {_token_id(token): float(lp)}
        for key, value in (top or {}).items():
            position.setdefault(_token_id(key), float(value))
        positions.append(position)
    return positions


def _token_id(key: str) -> int:
    return int(key.rsplit(":", 1)[-1])


class SseLines:
    """Complete lines out of a byte stream that arrives in arbitrary blocks (CR LF or LF).

    The streamed body is read in whatever blocks the socket delivers, often several events at
    once under load, and split here with bytes operations: no text decoding, no per-line
    reads, and no limit on a line's length (an event with many logprobs can be long). A last
    line without its newline is dropped, as the SSE standard drops an unfinished event.
    """

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, block: bytes) -> list[bytes]:
        lines = (self._rest + block).split(b"\n")
        self._rest = lines.pop()
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]


class ReadyChunks:
    """The chunks of each block of lines a replica's stream delivered, marked as ready together.

    Every event of a block that arrived is ready: all but the last chunk handed over say so
    (`more_ready`), and the run writes them as one. A finishing chunk waits for the usage chunk
    that follows it (prefix-cache hits are reported there), so that it can carry them; the
    others go out with their block (held, each token would reach the client one engine step
    late). A malformed event ends the block after what came before it: `block` returns it as
    the failure to raise once those are handed over.
    """

    def __init__(self, sampling: SamplingConfig, protocol: Protocol) -> None:
        self.sampling = sampling
        self.protocol = protocol
        self._held: list[GenerationChunk] = []

    def block(self, lines: list[bytes]) -> tuple[list[GenerationChunk], Exception | None]:
        ready: list[GenerationChunk] = []
        failure: Exception | None = None
        for line in lines:
            try:
                payload = parse_event(line)
            except (UpstreamError, json.JSONDecodeError) as exc:
                failure = exc
                break
            if payload is None:
                continue
            chunks = chunks_from_payload(payload, self.sampling, self.protocol)
            cached = cached_tokens(payload)
            held = self._held
            if cached is not None and held:
                held[-1].cached_prompt_tokens = cached
            ready += held
            self._held = []
            for chunk in chunks:
                if chunk.finish_reason is None and not self._held:
                    ready.append(chunk)
                else:
                    self._held.append(chunk)
        _mark_ready(ready)
        return ready, failure

    def rest(self) -> list[GenerationChunk]:
        """What was held when the stream ended."""
        held, self._held = self._held, []
        _mark_ready(held)
        return held


def _mark_ready(chunks: list[GenerationChunk]) -> None:
    for chunk in chunks[:-1]:
        chunk.more_ready = True
