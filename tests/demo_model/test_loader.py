"""Expanding the committed compact weights into a normal Hugging Face checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors import safe_open

from proxy.demo_model.loader import WEIGHTS_DIR, ensure_demo_model, weights_hash


def test_checkpoint_directory_holds_the_hugging_face_files(demo_model_path):
    names = {p.name for p in demo_model_path.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    } <= names
    config = json.loads((demo_model_path / "config.json").read_text())
    assert config["model_type"] == "gpt_oss" and config["vocab_size"] == 201088
    assert config["head_dim"] == 64


def test_directory_name_carries_the_weights_hash(demo_model_path):
    assert demo_model_path.name == f"gpt-oss-demo-{weights_hash()}"
    assert not [p for p in demo_model_path.parent.iterdir() if p.name.startswith(".building-")]


def test_a_second_call_reuses_the_cached_checkpoint(demo_model_path):
    messages: list[str] = []
    assert ensure_demo_model(demo_model_path.parent, progress=messages.append) == demo_model_path
    assert messages == []


def test_changed_weights_get_a_new_directory(tmp_path):
    shutil.copytree(WEIGHTS_DIR, tmp_path / "weights")
    meta_path = tmp_path / "weights" / "compact.json"
    meta = json.loads(meta_path.read_text())
    meta["training"]["steps"] += 1
    meta_path.write_text(json.dumps(meta))
    assert weights_hash(tmp_path / "weights") != weights_hash()


def test_untrained_ids_share_the_unk_input_row_and_the_other_output_row(demo_model_path):
    meta = json.loads((WEIGHTS_DIR / "compact.json").read_text())
    known = set(meta["compact_ids"])
    unused = [i for i in (5, 150000, 200500, 201087) if i not in known]
    with (
        safe_open(demo_model_path / "model.safetensors", "pt") as full,
        safe_open(WEIGHTS_DIR / "compact.safetensors", "pt") as compact,
    ):
        embed, head = (
            full.get_tensor("model.embed_tokens.weight"),
            full.get_tensor("lm_head.weight"),
        )
        small_embed = compact.get_tensor("model.embed_tokens.weight")
        small_head = compact.get_tensor("lm_head.weight")
    assert embed.shape == head.shape == (201088, small_embed.shape[1])
    for token in unused:
        assert embed[token].equal(small_embed[meta["unk_row"]])
        assert head[token].equal(small_head[meta["other_row"]])
    for row, token in enumerate(meta["compact_ids"][:50]):
        assert embed[token].equal(small_embed[row]) and head[token].equal(small_head[row])


def test_transformers_loads_the_checkpoint_and_generates_harmony(demo_model_path):
    transformers = pytest.importorskip("transformers")
    import torch

    from harmony import (
        Conversation,
        HarmonyEncodingName,
        Message,
        Role,
        SystemContent,
        load_harmony_encoding,
    )

    model = transformers.AutoModelForCausalLM.from_pretrained(demo_model_path, dtype=torch.float32)
    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    prompt = enc.render_conversation_for_completion(
        Conversation.from_messages(
            [
                Message.from_role_and_content(Role.SYSTEM, SystemContent.new()),
                Message.from_role_and_content(Role.USER, "Hello!"),
            ]
        ),
        Role.ASSISTANT,
    )
    output = model.generate(torch.tensor([prompt]), max_new_tokens=4, do_sample=False)
    assert output.shape[1] == len(prompt) + 4
    assert output[0, len(prompt)].item() == 200005  # <|channel|>: the model starts a header
