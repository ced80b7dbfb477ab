"""`serve` flags for scaling: remote replicas (`--backend-url`) and the in-process engine's tuning.

Kept apart from cli.py so the core command stays readable; cli.py adds these groups and calls
`build_pool` / `engine_tuning` from `serve`. Every flag has its HARMONY_PROXY_<FLAG> variable.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from proxy.backends.affinity import DEFAULT_BLOCK_TOKENS, DEFAULT_LOAD_FACTOR, PrefixRouter
from proxy.backends.pool import ReplicaPool

ENV_PREFIX = "HARMONY_PROXY_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _env_int(name: str) -> int | None:
    value = _env(name)
    return int(value) if value not in (None, "") else None


def _env_list(name: str) -> list[str]:
    return [v.strip() for v in (_env(name) or "").split(",") if v.strip()]


def add_replica_args(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "remote replicas",
        "Serve through running vLLM servers instead of loading an engine here. Several URLs "
        "form a pool: health checks, ejection and re-admission, least-outstanding-requests "
        "balancing with prefix affinity.",
    )
    group.add_argument(
        "--backend-url",
        action="append",
        default=_env_list("BACKEND_URL"),
        help="a vLLM server, e.g. http://10.0.0.5:8000 (repeatable; env comma-separated). "
        "Best started with --enable-scale-out (token-in/token-out endpoint); any vLLM >= 0.10.2 works",
    )
    group.add_argument(
        "--health-check-interval",
        type=float,
        default=float(_env("HEALTH_CHECK_INTERVAL", "5")),
        help="seconds between replica health checks (default: 5)",
    )
    group.add_argument(
        "--eject-after",
        type=int,
        default=int(_env("EJECT_AFTER", "2")),
        help="failed health checks in a row before a replica is ejected (default: 2; a refused "
        "or reset connection ejects at once)",
    )
    group.add_argument(
        "--prefix-affinity",
        action=argparse.BooleanOptionalAction,
        default=_env("PREFIX_AFFINITY", "true").lower() not in ("0", "false", "no"),
        help="route prompts sharing a prefix to the replica that has it cached (default: on)",
    )
    group.add_argument(
        "--affinity-block-tokens",
        type=int,
        default=int(_env("AFFINITY_BLOCK_TOKENS", str(DEFAULT_BLOCK_TOKENS))),
        help=f"prefix block size in tokens for affinity hashing (default: {DEFAULT_BLOCK_TOKENS})",
    )
    group.add_argument(
        "--affinity-load-factor",
        type=float,
        default=float(_env("AFFINITY_LOAD_FACTOR", str(DEFAULT_LOAD_FACTOR))),
        help="a replica keeps its prefixes while its outstanding requests stay within this "
        f"multiple of the mean (default: {DEFAULT_LOAD_FACTOR})",
    )


def add_engine_tuning_args(engine: argparse._ArgumentGroup) -> None:
    engine.add_argument(
        "--pipeline-parallel-size",
        type=int,
        default=_env_int("PIPELINE_PARALLEL_SIZE"),
        help="pipeline stages (GPUs) for one model (default: 1)",
    )
    engine.add_argument(
        "--data-parallel-size",
        type=int,
        default=_env_int("DATA_PARALLEL_SIZE"),
        help="engine replicas inside this process group (default: 1)",
    )
    engine.add_argument(
        "--max-num-seqs",
        type=int,
        default=_env_int("MAX_NUM_SEQS"),
        help="sequences per engine step (default: vLLM's)",
    )
    engine.add_argument(
        "--max-num-batched-tokens",
        type=int,
        default=_env_int("MAX_NUM_BATCHED_TOKENS"),
        help="tokens per engine step (default: vLLM's)",
    )
    engine.add_argument(
        "--enable-prefix-caching",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reuse the KV cache of shared prompt prefixes (default: vLLM's, on)",
    )
    engine.add_argument(
        "--kv-cache-dtype",
        default=_env("KV_CACHE_DTYPE"),
        help="KV-cache dtype, e.g. fp8 (default: the model's)",
    )
    engine.add_argument(
        "--engine-arg",
        action="append",
        default=_env_list("ENGINE_ARG"),
        metavar="KEY=VALUE",
        help="any other vLLM AsyncEngineArgs field (repeatable; VALUE parsed as JSON when it "
        "is JSON, e.g. block_size=32 or enable_expert_parallel=true)",
    )


def parse_engine_args(pairs: list[str]) -> dict[str, Any]:
    """`["block_size=32", "quantization=mxfp4"]` -> `{"block_size": 32, "quantization": "mxfp4"}`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise SystemExit(f"--engine-arg expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def engine_tuning(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for `EngineOptions` from the tuning flags."""
    return {
        "pipeline_parallel_size": args.pipeline_parallel_size,
        "data_parallel_size": args.data_parallel_size,
        "max_num_seqs": args.max_num_seqs,
        "max_num_batched_tokens": args.max_num_batched_tokens,
        "enable_prefix_caching": args.enable_prefix_caching,
        "kv_cache_dtype": args.kv_cache_dtype,
        "extra_engine_args": parse_engine_args(args.engine_arg),
    }


def build_pool(args: argparse.Namespace) -> ReplicaPool:
    """The replica pool for `--backend-url` (one URL is a pool of one: same health handling)."""
    urls = [u.strip() for value in args.backend_url for u in value.split(",") if u.strip()]
    router = PrefixRouter(
        block_tokens=args.affinity_block_tokens,
        load_factor=args.affinity_load_factor,
        enabled=args.prefix_affinity,
    )
    return ReplicaPool(
        urls,
        router=router,
        health_interval=args.health_check_interval,
        eject_after=args.eject_after,
    )
