"""Train the demo model: `python -m training.train [--budget-seconds 900]`.

A GptOssForCausalLM small enough to train on one CPU core (3 layers, hidden 64, two 64-wide query
heads; the first and third layer slide over 128 tokens like vLLM's even layers, the second sees
the whole prompt so it can copy tool names from the `namespace functions` block), on synthetic
Harmony conversations (training/data.py), with the loss on completion tokens only.

The trick that makes this fast: the model trains on a *compact* vocabulary (the ids the data and
the copyable word list use, the pieces that spell tool and parameter identifiers, plus the named
special tokens) with two extra rows: UNK (input only, standing for every other id) and OTHER
(output only, standing for all unused ids at once, its logit raised by log(number of unused ids)
so the softmax equals the full-vocabulary one). proxy/demo_model/loader.py later expands it to
the real 201,088-row vocabulary by copying those two rows. Only the compact weights (a few MB) are
committed.

Cost: the tool-use data has about twice the prompt length of the old data (declared tools with
their descriptions and schemas, mean ~240 tokens), so a step costs ~0.7 s of one unloaded core.
On a 2-core machine shared with other work (load average 4-7) a step took 0.75-2.2 s, 1.2 s on
average; generating 48,000 examples took 300 s there (~2.5 s per 1,000 unloaded). `--threads 1`
copes best with a busy CPU: measured under that load, 30 steps took 24 s with one thread and
142 s with two (two threads wait on each other when either is descheduled). The committed
weights record their actual steps and seconds in compact.json.

The runs so far, their commands and their held-out tables: training/RUNS.md.

Reproducibility: seeds are fixed. With a wall-clock budget the number of steps depends on the
machine, so the run records the step count it chose; `--max-steps N` (no budget) replays it, and
`--schedule-steps` replays a run cut short (or a `--checkpoint-every` snapshot) mid-schedule.
Snapshots (`--checkpoint-every`, `--checkpoint-minutes`, a budget's end, and the final weights
when written outside the repository) hold the trainer's state: `--resume DIR` continues the run
exactly (the same loss as without the interruption), in this session or a later one, and
`--resume DIR --max-steps N --schedule-steps N` stretches or shortens its schedule from there.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from training.batching import BatchEncoder, batches, slim
from training.data import Example, heldout_examples, iter_examples
from training.model_shape import architecture, full_config_dict
from training.schedule import WARMUP_STEPS, learning_rate, planned_steps
from training.vocabulary import FULL_VOCAB_SIZE, compact_vocabulary

# Where the server loads the committed weights from (proxy/demo_model/loader.py).
WEIGHTS_DIR = Path(__file__).parents[1] / "proxy" / "demo_model" / "weights"


# Flags a resumed run takes from the command line; every other one comes from the checkpoint.
_SESSION_FLAGS = ("budget_seconds", "out", "checkpoint_every", "checkpoint_minutes", "threads")


def _resumed_args(args: argparse.Namespace) -> tuple[argparse.Namespace, dict[str, Any] | None]:
    """With `--resume DIR`: the run's own arguments and its trainer state (optimizer, step, rng).

    A resumed run continues the same schedule on the same data, only this session's budget,
    output and checkpointing come from the command line.
    """
    if not args.resume:
        return args, None
    import torch

    # weights_only: a snapshot holds tensors, dicts, lists and numbers, never code to unpickle.
    state = torch.load(Path(args.resume) / "trainer.pt", weights_only=True)
    saved = dict(state["args"])
    for name in _SESSION_FLAGS:
        saved[name] = getattr(args, name)
    # A longer run than the saved one: its schedule stretched from where it stands (the
    # learning rate rises to where the longer cosine is at this step, the optimizer is kept).
    for name in ("max_steps", "schedule_steps"):
        if getattr(args, name) is not None:
            saved[name] = getattr(args, name)
    saved["resume"] = args.resume
    return argparse.Namespace(**saved), state


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file
    from transformers import GptOssConfig, GptOssForCausalLM

    args, resumed = _resumed_args(args)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    examples = [slim(e) for e in iter_examples(args.examples, seed=args.seed)]
    weights_from = args.resume or args.init
    init_meta = (
        json.loads((Path(weights_from) / "compact.json").read_text()) if weights_from else None
    )
    # Continuing a run keeps its vocabulary (rows must line up); new ids in fresh data are UNK.
    compact_ids = init_meta["compact_ids"] if init_meta else compact_vocabulary(examples)
    heldout = heldout_examples()
    known = set(compact_ids)
    user_tokens = [ex.prompt[i] for ex in heldout for s, e in ex.user_spans for i in range(s, e)]
    outside = sum(1 for t in user_tokens if t not in known)
    print(
        f"data: {len(examples)} examples in {time.monotonic() - t0:.1f}s, compact vocabulary "
        f"{len(compact_ids)} ids; held-out user tokens outside it: {outside}/{len(user_tokens)}",
        flush=True,
    )

    enc = BatchEncoder(compact_ids)
    vc = len(compact_ids) + 2
    arch = architecture(args.hidden, args.layers, args.heads)
    config = GptOssConfig(
        vocab_size=vc, pad_token_id=None, eos_token_id=None, bos_token_id=None, **arch
    )
    config._attn_implementation = "eager"  # attention sinks need the eager path
    model = GptOssForCausalLM(config)
    if weights_from:
        from safetensors.torch import load_file

        if resumed:  # the float32 master weights, not the bf16 export
            model.load_state_dict(resumed["model"])
        else:
            state = load_file(str(Path(weights_from) / "compact.safetensors"))
            model.load_state_dict({k: v.float() for k, v in state.items()})
    model.train()
    bias = torch.zeros(vc)
    bias[enc.unk] = -1e4
    bias[enc.other] = math.log(FULL_VOCAB_SIZE - len(compact_ids))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng = random.Random(args.seed)
    lengths = [len(e.prompt) + len(e.completion) for e in examples]

    def loss_of(batch: list[Example], noise: random.Random | None) -> Any:
        inputs, targets, mask, weights = enc.batch(batch, noise, args.header_weight)
        # The loss only covers completion tokens: project just those positions onto the vocabulary.
        hidden = model.model(input_ids=inputs).last_hidden_state[mask]
        logits = model.lm_head(hidden).float() + bias
        losses = torch.nn.functional.cross_entropy(logits, targets[mask], reduction="none")
        if noise is None:  # evaluation: the plain mean loss per completion token
            return losses.mean()
        w = weights[mask]
        return (losses * w).sum() / w.sum()

    def save(
        out: Path, step: int, seconds: float, final_loss: float | None, resumable: bool = False
    ) -> dict[str, Any]:
        """Write the compact weights and metadata, with the command that replays this state.

        A resumable snapshot also holds the trainer's state (`trainer.pt`: float32 weights,
        optimizer moments, step, schedule, random state, the epoch's remaining batches), so
        `--resume` continues the run exactly where it stopped, in this session or a later one.
        """
        out.mkdir(parents=True, exist_ok=True)
        if resumable:
            trainer = {
                "args": {k: v for k, v in vars(args).items() if k != "resume"},
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "total": total,
                "seconds": seconds,
                "rng": rng.getstate(),
                "epoch_batches": epoch_batches,
                "losses": losses[-50:],
            }
            torch.save(trainer, out / "trainer.pt.tmp")
            (out / "trainer.pt.tmp").replace(out / "trainer.pt")
        tensors = {
            k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()
        }
        save_file(tensors, str(out / "compact.safetensors"))
        schedule = args.schedule_steps or total
        meta = {
            "compact_ids": compact_ids,
            "unk_row": enc.unk,
            "other_row": enc.other,
            "config": full_config_dict(args.hidden, args.layers, args.heads),
            "training": {
                "steps": step,
                "seconds": round(seconds, 1),
                "final_loss": None if final_loss is None else round(final_loss, 4),
                "examples": args.examples,
                "seed": args.seed,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "header_weight": args.header_weight,
                "hidden": args.hidden,
                "layers": args.layers,
                "heads": args.heads,
                "threads": args.threads,
                "heldout_user_tokens_outside_vocab": [outside, len(user_tokens)],
                "schedule_steps": schedule,
                "resume": f"python -m training.train --resume {out}" if resumable else None,
                "replay": f"python -m training.train --max-steps {step} "
                f"--schedule-steps {schedule} --examples {args.examples} --seed {args.seed} "
                f"--hidden {args.hidden} --layers {args.layers} --heads {args.heads} "
                f"--batch-size {args.batch_size} --lr {args.lr} --header-weight {args.header_weight} "
                f"--threads {args.threads}" + (f" --init {args.init}" if args.init else ""),
            },
        }
        (out / "compact.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"wrote {out}", flush=True)
        return meta

    warmup, total = WARMUP_STEPS, args.max_steps
    step, epoch_batches, losses = 0, [], []
    earlier = 0.0  # training seconds of the sessions before a resume
    if resumed:
        optimizer.load_state_dict(resumed["optimizer"])
        step, total, earlier = resumed["step"], resumed["total"], resumed["seconds"]
        total = args.max_steps or total
        rng.setstate(resumed["rng"])
        epoch_batches, losses = resumed["epoch_batches"], resumed["losses"]
        print(f"resumed {args.resume} at step {step}/{total}", flush=True)
    start = time.monotonic()
    first = step
    last_snapshot = start
    while total is None or step < total:
        if not epoch_batches:
            epoch_batches = batches(lengths, args.batch_size, rng)
        if step == first + 10:
            timed = time.monotonic()
        if total is None and step == first + warmup:
            per_step = (time.monotonic() - timed) / (warmup - 10)
            remaining = args.budget_seconds - (timed - start)
            total = planned_steps(per_step, remaining, args.pace_margin, warmup)
            print(f"{per_step:.3f}s/step: planning {total} steps", flush=True)
        lr = learning_rate(step, args.lr, args.schedule_steps or total, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_of([examples[i] for i in epoch_batches.pop()], rng)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0 or step == 1:
            print(
                f"step {step}/{total} loss {sum(losses[-50:]) / len(losses[-50:]):.4f} "
                f"lr {lr:.2e} {time.monotonic() - start:.0f}s",
                flush=True,
            )
        now = time.monotonic()
        over = args.budget_seconds is not None and now - start > args.budget_seconds
        snapshot = (args.checkpoint_every and step % args.checkpoint_every == 0) or (
            args.checkpoint_minutes and now - last_snapshot > 60 * args.checkpoint_minutes
        )
        if (snapshot or over) and step < (total or 0):
            # Snapshots mid-schedule: on a loaded machine a run can be cut short and still
            # leave a state to resume (`--resume DIR`) or replay (`--max-steps step
            # --schedule-steps total`).
            seconds = earlier + now - start
            save(Path(args.checkpoint_dir) / f"step-{step}", step, seconds, None, resumable=True)
            last_snapshot = time.monotonic()
        if over:
            print("wall-clock budget reached", flush=True)
            break
    train_seconds = earlier + time.monotonic() - start

    model.eval()
    check = random.Random(args.seed + 1)
    with torch.no_grad():
        final_loss = (
            sum(
                loss_of(
                    [examples[i] for i in check.sample(range(len(examples)), args.batch_size)], None
                ).item()
                for _ in range(20)
            )
            / 20
        )
    print(f"trained {step} steps in {train_seconds:.1f}s; final loss {final_loss:.4f}", flush=True)
    # The trainer's state goes with the final weights too (a later session may stretch the run
    # with `--resume DIR --max-steps N --schedule-steps N`), but never into the repository.
    out = Path(args.out)
    outside_repo = out.resolve() != WEIGHTS_DIR.resolve()
    return save(out, step, train_seconds, final_loss, resumable=outside_repo)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=24000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=None,
        help="stop after this much training time in this session (default: 900 without "
        "--max-steps or --resume; with them, no limit); the schedule is planned from it when "
        "neither --max-steps nor --resume fixes it",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="train exactly this many steps (replays a recorded run)",
    )
    parser.add_argument(
        "--schedule-steps",
        type=int,
        default=None,
        help="length of the learning-rate schedule (default: the step count)",
    )
    parser.add_argument(
        "--pace-margin",
        type=float,
        default=0.85,
        help="plan this fraction of the steps the first steps' pace fits in the budget",
    )
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--heads", type=int, default=2, help="query heads (head_dim stays 64)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--header-weight",
        type=float,
        default=3.0,
        help="loss weight of completion message headers (the answer-or-call and which-tool "
        "decisions)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 copes best with a CPU shared with other work)",
    )
    parser.add_argument("--out", default=str(WEIGHTS_DIR))
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="also save a replayable snapshot every N steps (0: never)",
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=0,
        help="also save a resumable snapshot every N minutes of wall time (0: never)",
    )
    parser.add_argument("--checkpoint-dir", default="/tmp/demo-model-checkpoints")
    parser.add_argument(
        "--resume",
        default=None,
        help="continue a run from a snapshot directory holding trainer.pt (same data, "
        "schedule and random state; this session's budget, output and checkpointing)",
    )
    parser.add_argument(
        "--init",
        default=None,
        help="continue from the compact weights in this directory (its vocabulary is kept)",
    )
    args = parser.parse_args(argv)
    if args.budget_seconds is None and args.max_steps is None and args.resume is None:
        args.budget_seconds = 900.0
    train(args)


if __name__ == "__main__":
    sys.exit(main())
