"""The training loop on `transformers.Trainer`: best epoch, early stopping, resume and report_to from the library.

What stays ours is what the Trainer does not know: the per-batch padding of
pre-tokenized rows (the library's DataCollatorWithPadding), a length-sorted
eval set (eval order does not change metrics, sorted batches pad least), and
a callback that records per-step losses, per-epoch eval metrics and pure
training time (eval excluded) for the plots and the version's metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loradock.adapters.training.evaluate import EvalReport, better_epoch, compute_report

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# The integrations `--report-to` accepts; the Trainer checks that each one is installed.
REPORT_TO = ("tensorboard", "mlflow", "wandb")
LOGS_DIR = "runs"  # the Trainer's default logging folder inside output_dir


def _dataset(ids: Sequence[np.ndarray], labels: Sequence[int], order: Sequence[int] | np.ndarray | None = None) -> Any:
    from datasets import Dataset

    index = list(order) if order is not None else list(range(len(ids)))
    return Dataset.from_dict(
        {
            "input_ids": [ids[i].tolist() for i in index],
            "labels": [int(labels[i]) for i in index],
            "length": [len(ids[i]) for i in index],  # LengthGroupedSampler reads this column, never re-measures
        }
    )


def _classification_entry(metrics: dict[str, Any], epoch: int, train_loss: float | None) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "eval_loss": metrics.get("eval_loss"),
        "accuracy": metrics.get("eval_accuracy", 0.0),
        "macro_f1": metrics.get("eval_macro_f1", 0.0),
    }


def recorder(
    history: dict[str, Any],
    on_epoch: Any,
    epochs: int,
    entry: Callable[[dict[str, Any], int, float | None], dict[str, Any]] = _classification_entry,
    better: Callable[[dict[str, Any], dict[str, Any] | None], bool] = better_epoch,
) -> Any:
    """A Trainer callback filling `history` for any task: `entry` makes an epoch's record from the Trainer's
    eval metrics, `better` says whether it beats the best so far, `on_epoch(entry, epochs)` reports it."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        """Step losses, eval metrics per epoch and training time without eval, into `history`."""

        started = 0.0

        def on_epoch_begin(self, args, state, control, **kw):
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kw):
            history["train_time_s"] += time.perf_counter() - self.started

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs and "eval_loss" not in logs:
                history["step_loss"].append(float(logs["loss"]))

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            # The Trainer's own count: a resumed run goes on from its checkpoint's epoch, not from 1.
            epoch = round(state.epoch) if state.epoch else len(history["epochs"]) + 1
            per_epoch = history["step_loss"][-history["steps_per_epoch"] :]
            record = entry(metrics or {}, epoch, float(np.mean(per_epoch)) if per_epoch else None)
            history["epochs"].append(record)
            if better(record, history.get("best")):
                history["best"], history["best_epoch"] = record, epoch
            if on_epoch is not None:
                on_epoch(record, epochs)

    return Recorder()


def fit(
    model: torch.nn.Module,
    tokenizer: Any,
    train_ids: Sequence[np.ndarray],
    train_labels: Sequence[int],
    eval_ids: Sequence[np.ndarray],
    eval_labels: Sequence[int],
    label_names: Sequence[str],
    *,
    output_dir: Path,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    patience: int,
    device: str,
    warmup_ratio: float,
    weight_decay: float,
    grad_clip: float,
    report_to: Sequence[str] = (),
    progress: bool = False,
    resume: bool = False,
    on_epoch: Any = None,
    eval_source: str = "",
) -> tuple[EvalReport, dict[str, Any]]:
    """Train with the Trainer, keep the best epoch (eval macro-F1), stop after `patience` flat epochs.

    Returns the best epoch's eval report (the model holds its weights) and the run's history.
    """
    import torch
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, Trainer, TrainingArguments

    steps_per_epoch = -(-len(train_ids) // batch_size)
    history: dict[str, Any] = {
        "step_loss": [],
        "epochs": [],
        "train_time_s": 0.0,
        "samples": 0,
        "steps_per_epoch": steps_per_epoch,
    }
    eval_order = np.argsort([-len(r) for r in eval_ids], kind="stable")

    def metrics(pred: Any) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        report = compute_report(pred.label_ids, np.asarray(logits).argmax(axis=1), label_names)
        return {"accuracy": report.accuracy, "macro_f1": report.macro_f1}

    cuda = str(device).startswith("cuda")
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=64,
        train_sampling_strategy="group_by_length",
        warmup_steps=warmup_ratio,
        weight_decay=weight_decay,
        max_grad_norm=grad_clip,
        lr_scheduler_type="linear",
        seed=seed,
        data_seed=seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=1,
        report_to=list(report_to) or "none",
        disable_tqdm=not progress,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
    )
    callbacks = [recorder(history, on_epoch, epochs)]
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_dataset(train_ids, train_labels),
        eval_dataset=_dataset(eval_ids, eval_labels, eval_order),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics,
        callbacks=callbacks,
    )
    out = trainer.train(resume_from_checkpoint=True if resume else None)
    del out
    history["samples"] = len(train_ids) * len(history["epochs"])
    history["stopped_early"] = len(history["epochs"]) < epochs
    final = trainer.predict(_dataset(eval_ids, eval_labels, eval_order))
    logits = np.empty_like(final.predictions)
    logits[eval_order] = final.predictions
    from loradock.adapters.training.evaluate import report_from_logits

    return report_from_logits(logits, eval_labels, label_names, eval_source), history


def logs_folder(output_dir: Path) -> Path | None:
    """Where the Trainer's report_to integrations wrote their event files, if anywhere."""
    folder = output_dir / LOGS_DIR
    return folder if folder.is_dir() and any(folder.rglob("*")) else None
