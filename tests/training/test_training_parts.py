"""The demo model's trainer (training/): its parts, and a real run of a few steps that a resumed
run must repeat exactly."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the trainer's own dependencies (the `train` extra)
pytest.importorskip("transformers")

from training.batching import BatchEncoder, batches  # noqa: E402
from training.data import Example  # noqa: E402
from training.model_shape import ARCH, architecture, full_config_dict  # noqa: E402
from training.schedule import learning_rate, planned_steps  # noqa: E402
from training.tool_declarations import NAME_WORDS  # noqa: E402
from training.train import main  # noqa: E402
from training.vocabulary import FULL_VOCAB_SIZE, SPECIAL_IDS, compact_vocabulary  # noqa: E402

START, MESSAGE, CHANNEL = 200006, 200008, 200005


def example(prompt: list[int], completion: list[int], spans=()) -> Example:
    return Example(prompt, completion, "", (), "", user_spans=tuple(spans))


def test_batches_hold_every_index_once_grouped_by_length():
    rng = random.Random(3)
    lengths = [rng.randrange(5, 400) for _ in range(103)]
    grouped = batches(lengths, 8, random.Random(0))
    flat = [i for batch in grouped for i in batch]
    assert sorted(flat) == list(range(103))
    assert all(1 <= len(batch) <= 8 for batch in grouped)
    # Similar lengths: the batches partition the indices sorted by length.
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in grouped)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:], strict=False))
    assert grouped == batches(lengths, 8, random.Random(0))  # a seed gives the same epoch


def test_a_batch_is_shifted_masked_to_the_completion_and_weights_headers():
    encoder = BatchEncoder([10, 11, 12, START, MESSAGE, CHANNEL])
    unknown = 99
    completion = [12, START, 11, CHANNEL, MESSAGE, 10, unknown]
    inputs, targets, mask, weights = encoder.batch(
        [example([10, unknown, 11], completion), example([10, 11], [12])], None, 3.0
    )
    row = encoder.row
    full = [10, unknown, 11, *completion]
    assert inputs[0].tolist() == [row.get(t, encoder.unk) for t in full[:-1]]
    assert targets[0].tolist() == [row.get(t, encoder.other) for t in full[1:]]
    # Position i predicts token i + 1: the completion's targets are positions 2 .. 8.
    assert mask[0].tolist() == [False, False] + [True] * 7
    # <|start|> .. <|message|> of the completion (its tokens 1-4, positions 3-6) weigh 3.
    assert weights[0].tolist() == [1, 1, 1, 3, 3, 3, 3, 1, 1]
    # The shorter example is padded, its padding outside the mask.
    assert mask[1].tolist() == [False, True] + [False] * 7


def test_unk_dropout_only_touches_user_text():
    encoder = BatchEncoder(list(range(50)))
    ex = example(list(range(40)), [1, 2], spans=[(10, 30)])
    changed: set[int] = set()
    for seed in range(40):
        inputs, *_ = encoder.batch([ex], random.Random(seed))
        changed |= {i for i, t in enumerate(inputs[0].tolist()[:40]) if t == encoder.unk}
    assert changed and changed <= set(range(10, 30))


def test_layers_alternate_sliding_and_full_as_vllm_decides_by_parity():
    arch = architecture(hidden=32, layers=5, heads=4)
    assert arch["layer_types"] == ["sliding_attention", "full_attention"] * 2 + [
        "sliding_attention"
    ]
    assert (arch["hidden_size"], arch["num_hidden_layers"], arch["num_attention_heads"]) == (
        32,
        5,
        4,
    )
    config = full_config_dict(64, 3, 2)
    assert config["vocab_size"] == FULL_VOCAB_SIZE
    assert config["architectures"] == ["GptOssForCausalLM"]
    assert config["dtype"] == "bfloat16"


def test_the_committed_weights_config_is_what_the_trainer_writes():
    """The refactored trainer writes the config the committed checkpoint was exported with."""
    committed = Path(__file__).parents[2] / "proxy" / "demo_model" / "weights" / "compact.json"
    meta = json.loads(committed.read_text())
    shape = meta["training"]
    written = full_config_dict(shape["hidden"], shape["layers"], shape["heads"])
    keys = ["vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", *ARCH]
    assert {k: written[k] for k in keys} == {k: meta["config"][k] for k in keys}


def test_the_compact_vocabulary_keeps_specials_data_and_identifier_pieces():
    from harmony import HarmonyEncodingName, load_harmony_encoding

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    data = enc.encode("zyzzyva quokka")
    ids = compact_vocabulary([example(data, [])])
    assert ids == sorted(set(ids))
    assert set(SPECIAL_IDS) <= set(ids) and set(data) <= set(ids)
    for word in NAME_WORDS[:20]:  # identifiers the data may never show stay spellable
        for piece in (word, "." + word, "_" + word, word.capitalize()):
            assert set(enc.encode(piece)) <= set(ids), piece


def test_the_learning_rate_warms_up_then_falls_to_a_tenth():
    peak = 0.01
    assert learning_rate(0, peak, None, warmup=40) == pytest.approx(peak / 40)
    assert learning_rate(39, peak, None, warmup=40) == pytest.approx(peak)
    assert learning_rate(40, peak, 140, warmup=40) == pytest.approx(peak)
    assert learning_rate(90, peak, 140, warmup=40) == pytest.approx(peak * 0.55)
    assert learning_rate(140, peak, 140, warmup=40) == pytest.approx(peak * 0.1)
    assert learning_rate(500, peak, 140, warmup=40) == pytest.approx(peak * 0.1)
    rates = [learning_rate(s, peak, 140, warmup=40) for s in range(40, 141)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    assert planned_steps(0.5, 100.0, 0.85, warmup=40) == 170
    assert planned_steps(10.0, 100.0, 0.85, warmup=40) == 41  # always past the warm-up
    assert not math.isnan(learning_rate(41, peak, 41, warmup=40))


TINY = ["--examples", "48", "--seed", "0", "--hidden", "64", "--layers", "2", "--heads", "2"]
TINY += ["--batch-size", "4", "--lr", "0.003", "--threads", "1"]


def test_a_resumed_run_repeats_the_uninterrupted_one_exactly(tmp_path):
    """Four real steps straight, and two steps then `--resume` for two more: the same weights
    and the same replay command (what training/train.py promises for interrupted runs)."""
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    main([*TINY, "--max-steps", "4", "--out", str(straight)])
    main(
        [*TINY, "--max-steps", "4", "--checkpoint-every", "2"]
        + ["--checkpoint-dir", str(tmp_path / "snapshots"), "--out", str(tmp_path / "unused")]
    )
    main(["--resume", str(tmp_path / "snapshots" / "step-2"), "--out", str(cut)])
    a = (straight / "compact.safetensors").read_bytes()
    b = (cut / "compact.safetensors").read_bytes()
    assert a == b
    meta_a = json.loads((straight / "compact.json").read_text())
    meta_b = json.loads((cut / "compact.json").read_text())
    assert meta_a["training"]["steps"] == meta_b["training"]["steps"] == 4
    assert meta_a["compact_ids"] == meta_b["compact_ids"]
    assert meta_a["training"]["final_loss"] == meta_b["training"]["final_loss"]
    assert meta_a["training"]["replay"] == meta_b["training"]["replay"]
