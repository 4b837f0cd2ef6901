"""Length-grouped batches with dynamic padding: pad each batch only to its own longest text.

Short texts padded to 256 tokens spend most of their compute on padding; grouping
texts of similar length and padding per batch removes nearly all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from loradock.adapters.padding import pad_batch

if TYPE_CHECKING:
    import torch

# Texts are sorted by length inside windows of this many batches: batches stay
# homogeneous in length while their composition still changes every epoch.
WINDOW_BATCHES = 50


def length_grouped_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Index batches for one training epoch; the same (seed, epoch) gives the same batches."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = batch_size * WINDOW_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Index batches for inference: fully sorted by length, the least padding possible."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(ids: Sequence[np.ndarray], batch: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """`input_ids` and `attention_mask` for one batch, padded to its longest row."""
    import torch

    return {k: torch.from_numpy(v) for k, v in pad_batch([ids[i] for i in batch], pad_id).items()}


def padding_ratio(lengths: np.ndarray, batches: Sequence[np.ndarray], fixed: int | None = None) -> float:
    """Share of token slots that are padding, for batches padded per batch (or to `fixed`)."""
    real = sum(int(lengths[b].sum()) for b in batches)
    slots = sum(len(b) * (fixed or int(lengths[b].max())) for b in batches)
    return 1.0 - real / slots if slots else 0.0
