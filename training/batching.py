"""Training batches: examples grouped by length, and the padded tensors of one batch."""

from __future__ import annotations

import random
from array import array
from typing import Any

from training.data import Example

# Message headers inside a completion run from <|start|> to <|message|>.
_START, _MESSAGE = 200006, 200008


def slim(example: Example) -> Example:
    """The example with just what training reads: its tokens and the user spans.

    The full examples (requests, schemas, lists of Python ints) took 2 GB for 64,000, enough for
    the kernel's OOM killer on a shared machine; compact arrays of their tokens do not."""
    return Example(
        prompt=array("i", example.prompt),  # type: ignore[arg-type]
        completion=array("i", example.completion),  # type: ignore[arg-type]
        intent="",
        tools=(),
        expected="",
        user_spans=example.user_spans,
    )


def batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """The indices of `lengths` in batches of similar length (less padding), in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    grouped = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(grouped)
    return grouped


class BatchEncoder:
    """Maps full ids to compact rows and builds padded tensors for a batch.

    Row `unk` (after the compact ids) stands for every other id in the inputs, row `other` for
    every other id as a target (training/train.py's module docstring)."""

    def __init__(self, compact_ids: list[int]) -> None:
        self.row = {tok: i for i, tok in enumerate(compact_ids)}
        self.unk = len(compact_ids)
        self.other = len(compact_ids) + 1

    def batch(
        self, examples: list[Example], rng: random.Random | None, header_weight: float = 1.0
    ) -> tuple[Any, Any, Any, Any]:
        """Inputs, targets, the completion mask and per-position loss weights.

        Message headers inside the completion (`<|start|>assistant` up to `<|message|>`) weigh
        `header_weight`: that is where the model decides between an answer and a call and which
        declared tool it calls, a handful of tokens among many formulaic ones. With `rng`, half
        the examples have about an eighth of their user text replaced by UNK (a dropout that
        teaches copying unseen values).
        """
        import torch

        width = max(len(e.prompt) + len(e.completion) for e in examples) - 1
        inputs = torch.zeros((len(examples), width), dtype=torch.long)
        targets = torch.zeros((len(examples), width), dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.bool)
        weights = torch.ones((len(examples), width))
        for b, ex in enumerate(examples):
            seq = [self.row.get(t, self.unk) for t in ex.prompt + ex.completion]
            if rng is not None and rng.random() < 0.5:  # UNK dropout on user text
                for start, end in ex.user_spans:
                    for i in range(start, end):
                        if rng.random() < 0.12:
                            seq[i] = self.unk
            n = len(seq) - 1
            inputs[b, :n] = torch.tensor(seq[:-1])
            # A target outside the vocabulary (possible when --init keeps an older one) is OTHER.
            full = ex.prompt + ex.completion
            targets[b, :n] = torch.tensor([self.row.get(t, self.other) for t in full[1:]])
            mask[b, len(ex.prompt) - 1 : n] = True
            in_header = False
            for i, tok in enumerate(full[len(ex.prompt) :], start=len(ex.prompt) - 1):
                if tok == _START:
                    in_header = True
                if in_header:
                    weights[b, i] = header_weight
                if tok == _MESSAGE:
                    in_header = False
        return inputs, targets, mask, weights
