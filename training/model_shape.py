"""The demo model's architecture: what training builds and what the exported config.json says."""

from __future__ import annotations

from typing import Any

from training.vocabulary import FULL_VOCAB_SIZE

ARCH = {
    "hidden_size": 64,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,  # the vLLM CPU attention kernels need 64
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"],
    "tie_word_embeddings": False,
}


def architecture(hidden: int, layers: int, heads: int) -> dict[str, Any]:
    """ARCH resized. Even layers slide over 128 tokens, odd ones see the whole prompt.

    vLLM decides sliding vs full by layer parity (`layer_idx % 2 == 0` slides), so
    `layer_types` must alternate the same way or serving would differ from training. The tools
    block sits hundreds of tokens before the call: only the odd (full) layers can copy from it.
    """
    return {
        **ARCH,
        "hidden_size": hidden,
        "intermediate_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "layer_types": [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(layers)
        ],
    }


def full_config_dict(hidden: int, layers: int = 2, heads: int = 2) -> dict[str, Any]:
    """The Hugging Face config of the expanded checkpoint (what config.json will hold)."""
    from transformers import GptOssConfig

    arch = architecture(hidden, layers, heads)
    config = GptOssConfig(
        vocab_size=FULL_VOCAB_SIZE,
        bos_token_id=199998,
        eos_token_id=200002,
        pad_token_id=199999,
        architectures=["GptOssForCausalLM"],
        **arch,
    )
    data = config.to_dict()
    data["dtype"] = "bfloat16"
    return data
