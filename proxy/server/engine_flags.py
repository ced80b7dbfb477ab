"""The `serve` flags of the engine (vLLM in process) and of remote replicas."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.backends.affinity import DEFAULT_BLOCK_TOKENS, DEFAULT_LOAD_FACTOR
from proxy.server.flags import (
    GROUP_ENGINE,
    GROUP_REPLICAS,
    flag,
)


@dataclass(frozen=True)
class EngineFlags:
    """The engine's and the replicas' flags (a part of `Settings`)."""

    # -- engine
    model: str | None = flag(
        None,
        "a gpt-oss checkpoint: local path or hub id (default: the bundled demo model)",
        group=GROUP_ENGINE,
    )
    served_model_name: str | None = flag(
        None,
        "model id clients use (default: the model path/id; the demo model's name without --model)",
        group=GROUP_ENGINE,
    )
    cache: str | None = flag(
        None,
        "directory the bundled demo model's checkpoint is built in on first use (default: "
        "~/.cache/harmony-proxy)",
        group=GROUP_ENGINE,
        metavar="DIR",
    )
    max_model_len: int | None = flag(
        None,
        "context length, prompt plus completion (default: the checkpoint's)",
        group=GROUP_ENGINE,
        convert=int,
        minimum=1,
    )
    dtype: str = flag(
        "auto",
        "weights dtype (default: auto: the checkpoint's; for the demo model on a CPU "
        "without bf16 instructions, float32, which is faster there)",
        group=GROUP_ENGINE,
    )
    tensor_parallel_size: int = flag(
        1, "GPUs to shard the model over (default: 1)", group=GROUP_ENGINE, convert=int, minimum=1
    )
    gpu_memory_utilization: float = flag(
        0.9,
        "fraction of GPU memory for weights and KV cache (default: 0.9)",
        group=GROUP_ENGINE,
        convert=float,
        minimum=0,
    )
    cpu_kvcache_space_gib: int = flag(
        1,
        "KV-cache size in GiB on CPU hosts (default: 1; 0: vLLM's default)",
        group=GROUP_ENGINE,
        convert=int,
        minimum=0,
    )
    enforce_eager: bool | None = flag(
        None,
        "disable CUDA graphs (default: eager on CPU only)",
        group=GROUP_ENGINE,
        kind="tristate",
    )
    pipeline_parallel_size: int | None = flag(
        None,
        "pipeline stages (GPUs) for one model (default: 1)",
        group=GROUP_ENGINE,
        convert=int,
        minimum=1,
    )
    data_parallel_size: int | None = flag(
        None,
        "engine replicas inside this process group (default: 1)",
        group=GROUP_ENGINE,
        convert=int,
        minimum=1,
    )
    max_num_seqs: int | None = flag(
        None,
        "sequences per engine step (default: vLLM's)",
        group=GROUP_ENGINE,
        convert=int,
        minimum=1,
    )
    max_num_batched_tokens: int | None = flag(
        None,
        "tokens per engine step (default: vLLM's)",
        group=GROUP_ENGINE,
        convert=int,
        minimum=1,
    )
    enable_prefix_caching: bool | None = flag(
        None,
        "reuse the KV cache of shared prompt prefixes (default: vLLM's, on)",
        group=GROUP_ENGINE,
        kind="tristate",
    )
    kv_cache_dtype: str | None = flag(
        None, "KV-cache dtype, e.g. fp8 (default: the model's)", group=GROUP_ENGINE
    )
    engine_arg: tuple[str, ...] = flag(
        (),
        "any other vLLM AsyncEngineArgs field (repeatable; VALUE parsed as JSON when it "
        "is JSON, e.g. block_size=32 or enable_expert_parallel=true)",
        group=GROUP_ENGINE,
        kind="list",
        metavar="KEY=VALUE",
    )

    # -- remote replicas
    backend_url: tuple[str, ...] = flag(
        (),
        "a vLLM server, e.g. http://10.0.0.5:8000 (repeatable; env comma-separated). "
        "Best started with --enable-scale-out (token-in/token-out endpoint); any vLLM >= "
        "0.10.2 works",
        group=GROUP_REPLICAS,
        kind="list",
    )
    health_check_interval: float = flag(
        5.0,
        "seconds between replica health checks (default: 5)",
        group=GROUP_REPLICAS,
        convert=float,
        minimum=0,
    )
    eject_after: int = flag(
        2,
        "failed health checks in a row before a replica is ejected (default: 2; a refused "
        "or reset connection ejects at once)",
        group=GROUP_REPLICAS,
        convert=int,
        minimum=1,
    )
    prefix_affinity: bool = flag(
        True,
        "route prompts sharing a prefix to the replica that has it cached (default: on)",
        group=GROUP_REPLICAS,
        kind="switch",
    )
    affinity_block_tokens: int = flag(
        DEFAULT_BLOCK_TOKENS,
        f"prefix block size in tokens for affinity hashing (default: {DEFAULT_BLOCK_TOKENS})",
        group=GROUP_REPLICAS,
        convert=int,
        minimum=1,
    )
    affinity_load_factor: float = flag(
        DEFAULT_LOAD_FACTOR,
        "a replica keeps its prefixes while its outstanding requests stay within this "
        f"multiple of the mean (default: {DEFAULT_LOAD_FACTOR})",
        group=GROUP_REPLICAS,
        convert=float,
        minimum=1,
    )
    # The replicas' key: never shown (repr=False keeps it out of any printed Settings); the
    # remote backend sends it as `Authorization: Bearer` and names replicas, not keys, in errors.
    backend_api_key: str | None = field(
        default=None,
        repr=False,
        metadata=flag(
            None,
            "the key the replicas were started with (vllm serve --api-key / VLLM_API_KEY), "
            "sent with every request to them; best given as the environment variable",
            group=GROUP_REPLICAS,
            metavar="KEY",
        ).metadata,
    )
