"""An engine whose process dies: the request in flight fails cleanly and the backend says so.

Uses its own engine (not the session's), since killing it is the point.
"""

from __future__ import annotations

import psutil
import pytest

from proxy.backends.base import EngineError, EngineNotReady, SamplingConfig
from proxy.backends.vllm_engine import VllmBackend
from proxy.backends.vllm_options import EngineOptions


@pytest.mark.engine
def test_engine_process_death_fails_the_request_and_clears_ready(
    background_loop, demo_model_path, vllm_backend
):
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    backend = VllmBackend(
        EngineOptions(
            model=str(demo_model_path),
            max_model_len=512,
            cpu_kvcache_space_gib=1,
            gpu_memory_utilization=0.2,
        ),
        progress=lambda _: None,
    )
    background_loop.run(backend.start(), timeout=900)
    engine_processes = [p for p in me.children(recursive=True) if p.pid not in before]
    assert engine_processes and backend.ready
    prompt = [200006, 1428, 200008, 3686, 200007, 200006, 173781]
    sampling = SamplingConfig(max_tokens=400, stop_token_ids=())

    async def generate_while_killing() -> BaseException | None:
        try:
            async for _ in backend.generate(prompt, sampling, "doomed"):
                while engine_processes:
                    engine_processes.pop().kill()
        except Exception as exc:
            return exc
        return None

    try:
        error = background_loop.run(generate_while_killing(), timeout=120)
        assert isinstance(error, EngineError)
        assert not backend.ready
        with pytest.raises(EngineNotReady):
            background_loop.run(backend.check_health())

        async def generate_again() -> None:
            async for _ in backend.generate(prompt, sampling, "after-death"):
                pass

        with pytest.raises(EngineNotReady):
            background_loop.run(generate_again())
    finally:
        background_loop.run(backend.shutdown(), timeout=120)
    assert vllm_backend.ready  # the session's engine is unaffected
