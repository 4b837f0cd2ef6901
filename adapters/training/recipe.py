"""The training recipe chosen from the data's shape, never from the domain's name.

What decides whether LoRA learns is the number of optimizer steps and the
rate, not the epochs as such: 48 training rows in batches of 16 are 3 steps
per epoch, so 3 epochs are 9 steps and the head never leaves the majority
class (the issue's 60-row case). The rule therefore aims at a number of steps
that grows with the number of classes, spends them in as many epochs as the
data needs (between MIN_EPOCHS and MAX_EPOCHS; early stopping ends flat runs),
and uses a higher rate when there are few steps. Measured in BENCHMARKS.md
("Recipe from the data"); explicit --epochs/--lr or a domain's own values win.

Text length sets the truncation (`max_length`) when nobody else did: the 95th
percentile of the training texts' token counts (the base's tokenizer, special
tokens included), rounded up to a multiple of LENGTH_STEP, clamped to
[MIN_AUTO_LENGTH, MAX_AUTO_LENGTH] and to the base's position limit. Short
texts then train on short rows, and the 5% longest lose only their tail.
Who decides, in order: the run's --max-length; a domain whose stored
max_length differs from LoraRecipe's default (256); else the data. A domain
that stored exactly 256 cannot be told from the default (the registry keeps
no "unset"), so it gets the data's choice too; pass --max-length 256 to pin it.
MAX_AUTO_LENGTH = 256, measured (`bench/train.py --lengths`, 1000 rows, 500
held-out test rows, one thread, shared machine; BENCHMARKS.md "Text length in
the recipe"): accuracy / macro-F1 at 64, 128, 256 tokens were NG4 (p95 512
tokens) 0.958/0.957, 0.942/0.941, 0.946/0.945 and R8 (p95 346) 0.904/0.516,
0.912/0.518, 0.914/0.529. 128 trains 1.7-1.9x faster than 256 but costs R8
1.1 points of macro-F1 (the metric the gate and best epoch use), so the cap
stays at 256; the gaps are single-seed and near the noise (64 beat both on NG4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Steps to aim for: enough for every class's head row to move, more with more classes.
STEPS_PER_CLASS = 60
MIN_STEPS, MAX_STEPS = 150, 400
# At least 3 epochs: on all of Rotten Tomatoes (8,197 rows) 2 epochs lost 1.2-1.6 points to 3 whatever
# the rate (1e-3 x 3: 0.802; 5e-4 x 2: 0.790; 1e-3 x 2: 0.786); on R8 (4,388) 2 and 3 tied.
MIN_EPOCHS, MAX_EPOCHS = 3, 20
# Rates by training rows: few rows mean few steps, which need a larger rate. Above that 1e-3 (the
# real-review measurements, BENCHMARKS.md "lr"); a 5e-4 tier for large sets lost to 1e-3 on full RT.
LR_TIERS = ((500, 3e-3),)
LR_LARGE = 1e-3
WARMUP_RATIO = 0.1
MAX_WARMUP_STEPS = 100  # a large set starts learning after at most this many steps
# The data's truncation: this percentile of token counts, in steps of LENGTH_STEP tokens.
LENGTH_PERCENTILE = 95
LENGTH_STEP = 32
MIN_AUTO_LENGTH, MAX_AUTO_LENGTH = 32, 256


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
    # From the texts' token counts; None when the counts were not given (the run or domain set max_length).
    max_length: int | None = None
    length_p95: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        text = (
            f"{self.epochs} epochs x {self.steps_per_epoch} steps at lr {self.lr:g} "
            f"(from {self.rows} rows, {self.classes} classes)"
        )
        if self.max_length is not None:
            text += f", max_length {self.max_length} (95% of texts are {self.length_p95} tokens or fewer)"
        return text


def choose_max_length(lengths: Sequence[int] | np.ndarray, position_limit: int | None = None) -> tuple[int, int]:
    """(max_length, 95th-percentile token count) for texts of `lengths` tokens on a base reading `position_limit`."""
    p95 = math.ceil(float(np.percentile(np.asarray(lengths, dtype=np.int64), LENGTH_PERCENTILE))) if len(lengths) else 0
    length = min(MAX_AUTO_LENGTH, max(MIN_AUTO_LENGTH, LENGTH_STEP * math.ceil(p95 / LENGTH_STEP)))
    return (min(length, position_limit) if position_limit else length), p95


def choose(
    rows: int,
    classes: int,
    batch_size: int,
    lengths: Sequence[int] | np.ndarray | None = None,
    position_limit: int | None = None,
) -> Recipe:
    """The recipe for `rows` training rows of `classes` classes in batches of `batch_size`.

    With `lengths` (token counts of the training texts) it also picks max_length.
    """
    steps_per_epoch = max(1, math.ceil(rows / batch_size))
    target = min(MAX_STEPS, max(MIN_STEPS, STEPS_PER_CLASS * classes))
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(target / steps_per_epoch)))
    lr = next((rate for limit, rate in LR_TIERS if rows < limit), LR_LARGE)
    total = epochs * steps_per_epoch
    warmup = min(WARMUP_RATIO, MAX_WARMUP_STEPS / total) if total else WARMUP_RATIO
    max_length, p95 = choose_max_length(lengths, position_limit) if lengths is not None else (None, None)
    return Recipe(
        epochs=epochs,
        lr=lr,
        warmup_ratio=warmup,
        rows=rows,
        classes=classes,
        steps_per_epoch=steps_per_epoch,
        target_steps=target,
        max_length=max_length,
        length_p95=p95,
    )
