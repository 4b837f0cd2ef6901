"""The training recipe chosen from the data's shape, never from the domain's name.

What decides whether LoRA learns is the number of optimizer steps and the
rate, not the epochs as such: 48 training rows in batches of 16 are 3 steps
per epoch, so 3 epochs are 9 steps and the head never leaves the majority
class (the issue's 60-row case). The rule therefore aims at a number of steps
that grows with the number of classes, spends them in as many epochs as the
data needs (between MIN_EPOCHS and MAX_EPOCHS; early stopping ends flat runs),
and uses a higher rate when there are few steps. Measured in BENCHMARKS.md
("Recipe from the data"); explicit --epochs/--lr or a domain's own values win.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# Steps to aim for: enough for every class's head row to move, more with more classes.
STEPS_PER_CLASS = 60
MIN_STEPS, MAX_STEPS = 150, 400
MIN_EPOCHS, MAX_EPOCHS = 2, 20
# Rates by training rows: few rows mean few steps, which need a larger rate; the
# 1e-3 and 5e-4 tiers are the real-review measurements (BENCHMARKS.md, "lr").
LR_TIERS = ((500, 3e-3), (5000, 1e-3))
LR_LARGE = 5e-4
WARMUP_RATIO = 0.1
MAX_WARMUP_STEPS = 100  # a large set starts learning after at most this many steps


@dataclass(frozen=True)
class Recipe:
    """Epochs, learning rate and warm-up for one run, with the numbers that chose them."""

    epochs: int
    lr: float
    warmup_ratio: float
    rows: int
    classes: int
    steps_per_epoch: int
    target_steps: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.epochs} epochs x {self.steps_per_epoch} steps at lr {self.lr:g} "
                f"(from {self.rows} rows, {self.classes} classes)")


def choose(rows: int, classes: int, batch_size: int) -> Recipe:
    """The recipe for `rows` training rows of `classes` classes in batches of `batch_size`."""
    steps_per_epoch = max(1, math.ceil(rows / batch_size))
    target = min(MAX_STEPS, max(MIN_STEPS, STEPS_PER_CLASS * classes))
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(target / steps_per_epoch)))
    lr = next((rate for limit, rate in LR_TIERS if rows < limit), LR_LARGE)
    total = epochs * steps_per_epoch
    warmup = min(WARMUP_RATIO, MAX_WARMUP_STEPS / total) if total else WARMUP_RATIO
    return Recipe(epochs=epochs, lr=lr, warmup_ratio=warmup, rows=rows, classes=classes,
                  steps_per_epoch=steps_per_epoch, target_steps=target)
