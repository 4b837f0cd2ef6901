"""Masked eval loss and perplexity of a causal LM, with the adapter and with it disabled (the base).

The loss is the mean cross-entropy over every trained token of the eval split (the
completion/assistant tokens, as in training), summed over batches and divided once,
so long rows weigh by their tokens, not by their batch. Perplexity is exp(loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from loradock.adapters.generation.data import IGNORE_INDEX, Encoded, collate


@dataclass(frozen=True)
class GenerationReport:
    """Eval loss and perplexity of the adapter and of its base on the same tokens."""

    eval_loss: float
    perplexity: float
    base_eval_loss: float
    base_perplexity: float
    tokens: int
    rows: int
    source: str

    def to_metrics(self) -> dict[str, Any]:
        values = {k: v for k, v in asdict(self).items() if k not in ("tokens", "rows", "source")}
        return {
            **values,
            "eval_tokens": self.tokens,
            "eval_rows": self.rows,
            "eval_loss_delta": self.eval_loss - self.base_eval_loss,
        }

    def render(self) -> str:
        return (
            f"eval on {self.rows} rows ({self.tokens} completion tokens) of {self.source}\n"
            f"  base (adapter disabled): loss {self.base_eval_loss:.4f}, perplexity {self.base_perplexity:.2f}\n"
            f"  adapter:                 loss {self.eval_loss:.4f}, perplexity {self.perplexity:.2f}"
        )


def masked_loss(model: Any, rows: Sequence[Encoded], pad_id: int, batch_size: int, device: str) -> tuple[float, int]:
    """(mean cross-entropy over the trained tokens of `rows`, how many tokens), in eval mode, no gradients."""
    import torch
    import torch.nn.functional as F

    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].input_ids))  # similar lengths pad least
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                batch = [
                    {"input_ids": rows[i].input_ids, "labels": rows[i].labels}
                    for i in order[start : start + batch_size]
                ]
                tensors = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
                logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]).logits
                shifted = tensors["labels"][:, 1:]
                total += float(
                    F.cross_entropy(
                        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                        shifted.reshape(-1),
                        ignore_index=IGNORE_INDEX,
                        reduction="sum",
                    )
                )
                tokens += int((shifted != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return (total / tokens if tokens else float("nan")), tokens


def report(
    model: Any, rows: Sequence[Encoded], pad_id: int, batch_size: int, device: str, source: str
) -> GenerationReport:
    """The adapter's eval loss and the base's (PEFT's disable_adapter) on the same rows."""
    loss, tokens = masked_loss(model, rows, pad_id, batch_size, device)
    with model.disable_adapter():
        base_loss, _ = masked_loss(model, rows, pad_id, batch_size, device)
    return GenerationReport(
        eval_loss=loss,
        perplexity=_perplexity(loss),
        base_eval_loss=base_loss,
        base_perplexity=_perplexity(base_loss),
        tokens=tokens,
        rows=len(rows),
        source=source,
    )


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")  # exp overflows a float past ~709
