"""PNG plots of a training run: loss curve, validation accuracy per epoch, confusion heatmap."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


def loss_curve(
    step_losses: Sequence[float],
    steps_per_epoch: int,
    path: Path,
    eval_losses: Sequence[float] = (),
    title: str = "Training loss",
) -> Path:
    """Per-step training loss, its moving average, epoch boundaries and eval loss per epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    steps = np.arange(1, len(step_losses) + 1)
    window = max(1, min(len(step_losses) // 10, 50))
    # Few steps: the raw curve is the curve; many: it is noise under its moving average.
    ax.plot(
        steps,
        step_losses,
        color="tab:blue",
        alpha=0.35 if window > 1 else 1.0,
        linewidth=1,
        label="train loss (per step)",
    )
    if window > 1:
        smooth = np.convolve(step_losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", linewidth=2, label=f"train loss ({window}-step mean)")
    if eval_losses:
        ends = [steps_per_epoch * (i + 1) for i in range(len(eval_losses))]
        ax.plot(ends, eval_losses, "o-", color="tab:orange", label="eval loss (end of epoch)")
    for i in range(1, len(eval_losses) or 0):
        ax.axvline(steps_per_epoch * i, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def accuracy_curve(
    accuracies: Sequence[float],
    path: Path,
    macro_f1: Sequence[float] = (),
    title: str = "Validation accuracy per epoch",
    best_epoch: int | None = None,
    baseline: float | None = None,
) -> Path:
    """Accuracy and macro-F1 per epoch; the registered (best) epoch and the majority-class accuracy marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    epochs = np.arange(1, len(accuracies) + 1)
    ax.plot(epochs, accuracies, "o-", color="tab:green", label="accuracy")
    if macro_f1:
        ax.plot(epochs, macro_f1, "s--", color="tab:purple", label="macro-F1")
    if baseline is not None:  # the quality gate's floor: always predicting the majority class
        ax.axhline(
            baseline, color="tab:red", linestyle=":", linewidth=1.2, label=f"majority-class accuracy {baseline:.3f}"
        )
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"registered: epoch {best_epoch}")
    for x, y in zip(epochs, accuracies):
        ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation score")
    ax.set_xticks(epochs)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion_heatmap(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "Confusion matrix"
) -> Path:
    """Counts with true labels as rows and predicted labels as columns."""
    plt = _pyplot()
    data = np.asarray(matrix)
    size = 2.5 + 0.9 * len(labels)
    fig, ax = plt.subplots(figsize=(max(size + 1, 6.0), size), dpi=110)
    image = ax.imshow(data, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title)
    threshold = data.max() / 2 if data.size else 0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(
                j, i, str(data[i, j]), ha="center", va="center", color="white" if data[i, j] > threshold else "black"
            )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
