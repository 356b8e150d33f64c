"""Learning-rate multipliers as pure functions of the optimizer step (0-based), so resuming is exact."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "linear", "exponential", "constant")


def lr_scale(step: int, total_steps: int, warmup_steps: int = 0, schedule: str = "cosine",
             min_lr_ratio: float = 0.0, gamma: float = 0.9999) -> float:
    """Multiplier of the base learning rate at `step`: linear warm-up over `warmup_steps` (from 1/warmup to
    1), then `schedule`: "cosine" or "linear" down to `min_lr_ratio` at the last step (`total_steps` - 1),
    "exponential" (`gamma` ** steps after warm-up) or "constant"."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} not one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    done = step - warmup_steps
    progress = min(done / max(total_steps - warmup_steps - 1, 1), 1.0)
    if schedule == "cosine":
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return min_lr_ratio + (1 - min_lr_ratio) * (1 - progress)
    if schedule == "exponential":
        return gamma ** done
    return 1.0
