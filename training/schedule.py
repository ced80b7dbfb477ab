"""The learning-rate schedule and the step plan of a run with a wall-clock budget."""

from __future__ import annotations

import math

WARMUP_STEPS = 40


def learning_rate(
    step: int, peak: float, schedule: int | None, warmup: int = WARMUP_STEPS
) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from `peak` down to a tenth of it at
    step `schedule` (and flat after); with no schedule yet (a budgeted run still timing its
    first steps), the warm-up alone."""
    lr = peak * min(1.0, (step + 1) / warmup)
    if schedule is not None and step >= warmup:
        progress = min(1.0, (step - warmup) / max(1, schedule - warmup))
        lr = peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


def planned_steps(
    per_step: float, remaining: float, margin: float, warmup: int = WARMUP_STEPS
) -> int:
    """The steps a budgeted run plans: `margin` of what `remaining` seconds fit at `per_step`
    seconds a step (a margin for a machine whose load grows: a schedule cut by the budget ends
    at a high learning rate; the 2,740-of-3,208-step run stopped at 4.4e-4 of 3e-3), and always
    past the warm-up."""
    return max(warmup + 1, int(margin * remaining / per_step))
