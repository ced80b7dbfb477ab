"""The scaling parts of `serve`: the replica pool (`--backend-url`) and the engine's tuning.

The flags themselves are declared with the others on `Settings` (proxy/server/settings.py);
this module turns them into what the serving code takes, apart from cli.py so the core command
stays readable.
"""

from __future__ import annotations

from typing import Any

from proxy.backends.affinity import PrefixRouter
from proxy.backends.pool import ReplicaPool
from proxy.server.settings import Settings, parse_engine_args

__all__ = ["build_pool", "engine_tuning", "parse_engine_args"]


def engine_tuning(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `EngineOptions` from the tuning flags."""
    return {
        "pipeline_parallel_size": settings.pipeline_parallel_size,
        "data_parallel_size": settings.data_parallel_size,
        "max_num_seqs": settings.max_num_seqs,
        "max_num_batched_tokens": settings.max_num_batched_tokens,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "kv_cache_dtype": settings.kv_cache_dtype,
        "extra_engine_args": settings.engine_args(),
    }


def build_pool(settings: Settings) -> ReplicaPool:
    """The replica pool for `--backend-url` (one URL is a pool of one: same health handling).

    A flag's value may itself be a comma-separated list, as the environment variable is.
    """
    urls = [u.strip() for value in settings.backend_url for u in value.split(",") if u.strip()]
    router = PrefixRouter(
        block_tokens=settings.affinity_block_tokens,
        load_factor=settings.affinity_load_factor,
        enabled=settings.prefix_affinity,
    )
    return ReplicaPool(
        urls,
        router=router,
        health_interval=settings.health_check_interval,
        eject_after=settings.eject_after,
        api_key=settings.backend_api_key,
    )
