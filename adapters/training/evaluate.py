"""Evaluation: predictions in length-sorted batches, metrics, and the labelled report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loradock.adapters.training.batching import collate, sorted_batches

if TYPE_CHECKING:
    import torch

    from loradock.adapters.data import LabelledData
    from loradock.registry import Registry

log = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 64


@dataclass(frozen=True)
class EvalReport:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""

    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    eval_loss: float | None
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    size: int
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_metrics(self) -> dict[str, Any]:
        """The registry's `metrics` fields."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "eval_loss": self.eval_loss,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion_matrix,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.to_metrics(),
            "labels": list(self.labels),
            "size": self.size,
            "source": self.source,
            **self.extra,
        }


def compute_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    labels: Sequence[str],
    eval_loss: float | None = None,
    source: str = "",
) -> EvalReport:
    """Metrics from label indices; a class never predicted gets precision 0, not NaN."""
    k = len(labels)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = float(matrix[i, i])
        predicted, actual = float(matrix[:, i].sum()), float(matrix[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual)}
        if actual:  # macro-F1 over the labels the data holds
            f1s.append(f1)
    total = int(matrix.sum())
    return EvalReport(
        labels=tuple(labels),
        accuracy=float(np.trace(matrix)) / total if total else 0.0,
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        eval_loss=eval_loss,
        per_class=per_class,
        confusion_matrix=matrix.tolist(),
        size=total,
        source=source,
    )


def better_epoch(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Best epoch = higher eval macro-F1, ties to the lower eval loss (both training loops use this).

    Macro-F1, not loss: the quality gate judges predictions, and eval loss can
    keep falling while every row is still predicted as the majority class.
    """
    if old is None:
        return True
    if new["macro_f1"] != old["macro_f1"]:
        return bool(new["macro_f1"] > old["macro_f1"])
    inf = float("inf")
    return (new["eval_loss"] if new["eval_loss"] is not None else inf) < (
        old["eval_loss"] if old["eval_loss"] is not None else inf
    )


def autocast_for(device: str) -> Any:
    """fp16/bf16 autocast on CUDA; full precision on CPU, where autocast buys little."""
    import torch

    if str(device).startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def predict_logits(
    model: torch.nn.Module,
    ids: Sequence[np.ndarray],
    pad_id: int,
    device: str,
    batch_size: int = EVAL_BATCH_SIZE,
) -> np.ndarray:
    """Logits for every row, in input order, from length-sorted batches."""
    import torch

    lengths = np.array([len(r) for r in ids])
    out: np.ndarray | None = None
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast_for(device):
        for batch in sorted_batches(lengths, batch_size):
            inputs = {k: v.to(device) for k, v in collate(ids, batch, pad_id).items()}
            logits = model(**inputs).logits.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), logits.shape[1]), dtype=np.float32)
            out[batch] = logits
    model.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def report_from_logits(
    logits: np.ndarray, y_true: Sequence[int], labels: Sequence[str], source: str = ""
) -> EvalReport:
    """Metrics plus the mean cross-entropy of the logits."""
    y = np.asarray(y_true, dtype=np.int64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(y)), y].mean()) if len(y) else None
    return compute_report(y, logits.argmax(axis=1), labels, loss, source)


def evaluate_model(
    model: torch.nn.Module,
    ids: Sequence[np.ndarray],
    data: LabelledData,
    pad_id: int,
    device: str,
    batch_size: int = EVAL_BATCH_SIZE,
) -> EvalReport:
    logits = predict_logits(model, ids, pad_id, device, batch_size)
    return report_from_logits(logits, data.labels, data.label_names, data.source)


def evaluate_version(
    registry: Registry,
    ref: str,
    data: str | LabelledData,
    *,
    text_column: str = "text",
    label_column: str = "label",
    split: str = "test",
    device: str = "auto",
    max_length: int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
) -> EvalReport:
    """Re-evaluate a registered version on any data source; labels are checked against the version's."""
    from loradock.adapters import data as datamod
    from loradock.adapters.base import pick_device
    from loradock.adapters.loading import load_version
    from loradock.adapters.training.tokenized import tokenize

    version = registry.resolve(ref)
    labelled = (
        data
        if not isinstance(data, str)
        else datamod.load(data, version.labels, text_column=text_column, label_column=label_column, split=split)
    )
    if tuple(labelled.label_names) != tuple(version.labels):
        labelled = datamod.to_labelled(labelled.rows(), version.labels, labelled.source)
    device = pick_device(device)
    loaded = load_version(registry, version.ref, device)
    length = max_length or int(version.train_args.get("max_length", 256))
    ids = tokenize(loaded.tokenizer, labelled.texts, labelled.fingerprint, length, registry.home / "cache")
    report = evaluate_model(loaded.model, ids, labelled, loaded.tokenizer.pad_token_id or 0, device, batch_size)
    log.info("%s on %s: accuracy %.4f", version.ref, labelled.source, report.accuracy)
    return report


def render(report: EvalReport) -> str:
    """The human report: headline metrics, per-class table, confusion matrix (rows true, columns predicted)."""
    from tabulate import tabulate

    loss = f"{report.eval_loss:.4f}" if report.eval_loss is not None else "-"
    lines = [
        f"examples {report.size}   accuracy {report.accuracy:.4f}   macro-F1 {report.macro_f1:.4f}   eval loss {loss}",
        "",
        tabulate(
            [
                (n, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", c["support"])
                for n, c in report.per_class.items()
            ],
            headers=["label", "precision", "recall", "f1", "support"],
            tablefmt="simple",
            disable_numparse=True,
        ),
        "",
        "confusion matrix (rows: true label, columns: predicted label)",
        tabulate(
            [[f"true {n}", *row] for n, row in zip(report.labels, report.confusion_matrix)],
            headers=["", *(f"pred {n}" for n in report.labels)],
            tablefmt="simple",
        ),
    ]
    return "\n".join(lines)
