"""Token-id rows to one padded batch: the one collate that training, evaluation and both serving backends wrap."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def pad_batch(
    rows: Sequence[Sequence[int] | np.ndarray], pad_id: int, names: Iterable[str] = ("input_ids", "attention_mask")
) -> dict[str, np.ndarray]:
    """The model inputs `names` (of TEXT_INPUTS) as int64 arrays, each row padded to the longest row.

    Padding goes on the right with `pad_id`, masked out by `attention_mask`;
    `token_type_ids` is all zeros (one segment per text).
    """
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    wanted = list(names)
    unknown = [n for n in wanted if n not in batch]
    if unknown:
        raise ValueError(f"Unknown model input(s) {unknown}; pad_batch builds {', '.join(TEXT_INPUTS)}.")
    return {n: batch[n] for n in wanted}
