"""Turn the committed compact weights into a normal Hugging Face checkpoint, once, in a cache.

The repository holds only the compact model (~2.5 MB: about 8,000 vocabulary rows). vLLM and
transformers need the real 201,088-row vocabulary, so on first use we expand it: every id the
model never trained on gets the shared UNK embedding row and the shared OTHER output row (the
training loss already accounted for all of them through OTHER), which makes the expanded model's
distribution over the full vocabulary equal to the compact one's. The result (~52 MB in bf16) is
cached under a directory named by a hash of the weights, so retraining invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.demo_model.tokenizer_files import write_tokenizer_files

WEIGHTS_DIR = Path(__file__).parent / "weights"
COMPACT_WEIGHTS = "compact.safetensors"
COMPACT_META = "compact.json"
# Bump when the expanded checkpoint's layout changes (new files, different config).
LAYOUT_VERSION = 1
GENERATION_CONFIG = {
    "bos_token_id": 199998,
    "eos_token_id": [200002, 199999, 200012],
    "pad_token_id": 199999,
}


def default_cache_dir() -> Path:
    """$HARMONY_PROXY_CACHE, else ~/.cache/harmony-proxy."""
    env = os.environ.get("HARMONY_PROXY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "harmony-proxy"


def weights_hash(weights_dir: Path = WEIGHTS_DIR) -> str:
    """A short hash of the compact weights and metadata (and the expansion layout)."""
    digest = hashlib.sha256(f"layout{LAYOUT_VERSION}".encode())
    for name in (COMPACT_WEIGHTS, COMPACT_META):
        digest.update((weights_dir / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_demo_model(
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = print,
    weights_dir: Path = WEIGHTS_DIR,
) -> Path:
    """The path of the expanded demo checkpoint, building it on first use.

    The directory is built next to its final place and renamed into it, so a crash or a
    concurrent build never leaves a half-written checkpoint behind.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / f"gpt-oss-demo-{weights_hash(weights_dir)}"
    if (target / "config.json").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    progress(f"Building the demo model checkpoint in {target} (first use)...")
    started = time.monotonic()
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    try:
        expand(weights_dir, building)
        write_tokenizer_files(building)
        # mkdtemp makes a private directory; the cache may be shared (e.g. baked into an image).
        building.chmod(0o755)
        for path in building.iterdir():
            path.chmod(0o644)
        try:
            building.rename(target)
        except OSError:
            if not (target / "config.json").exists():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    progress(f"Demo model ready in {time.monotonic() - started:.1f} s")
    return target


def expand(weights_dir: Path, out_dir: Path) -> None:
    """Write config.json, generation_config.json and model.safetensors (bf16) into `out_dir`."""
    import torch
    from safetensors.torch import load_file, save_file

    meta: dict[str, Any] = json.loads((weights_dir / COMPACT_META).read_text())
    compact = load_file(str(weights_dir / COMPACT_WEIGHTS))
    config = meta["config"]
    ids = torch.tensor(meta["compact_ids"], dtype=torch.long)
    full_size = config["vocab_size"]

    def widen(matrix: Any, fill_row: int) -> Any:
        full = matrix[fill_row].expand(full_size, matrix.shape[1]).clone()
        full[ids] = matrix[: len(ids)]
        return full

    tensors = dict(compact)
    tensors["model.embed_tokens.weight"] = widen(
        compact["model.embed_tokens.weight"], meta["unk_row"]
    )
    tensors["lm_head.weight"] = widen(compact["lm_head.weight"], meta["other_row"])
    tensors = {name: t.to(torch.bfloat16).contiguous() for name, t in tensors.items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    (out_dir / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=1) + "\n")
