"""Engine backends: the contract (`base`), vLLM in-process (`vllm_engine`), scripted (`scripted`)."""

from __future__ import annotations

from proxy.backends.base import (
    DEFAULT_STOP_TOKEN_IDS,
    EngineBackend,
    EngineError,
    EngineNotReady,
    GenerationChunk,
    SamplingConfig,
)

__all__ = [
    "DEFAULT_STOP_TOKEN_IDS",
    "EngineBackend",
    "EngineError",
    "EngineNotReady",
    "GenerationChunk",
    "SamplingConfig",
]
