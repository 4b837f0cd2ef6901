"""The training loops: the hand-written one (per-epoch eval, checkpoints, best epoch, early stopping) or the Trainer's.

Both return the best epoch's eval report (the model then holds its weights)
and the run's history; Ctrl-C raises TrainingInterrupted, naming the epoch a
--resume continues from.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from loradock.adapters.errors import TrainingInterrupted
from loradock.adapters.training import checkpoints
from loradock.adapters.training.batching import collate, length_grouped_batches
from loradock.adapters.training.evaluate import EvalReport, autocast_for, better_epoch, evaluate_model
from loradock.adapters.training.options import BEST_METRIC, GRAD_CLIP, WEIGHT_DECAY, TrainOptions
from loradock.adapters.training.prepare import Prepared

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def fit(
    prep: Prepared,
    options: TrainOptions,
    model: torch.nn.Module,
    device: str,
    train_ids: list[np.ndarray],
    eval_ids: list[np.ndarray],
) -> tuple[EvalReport, dict[str, Any]]:
    """Train with the loop `options.run_loop` names; returns the best epoch's eval report and the history."""
    if options.run_loop == "trainer":
        return _fit_trainer(prep, options, model, device, train_ids, eval_ids)
    return _fit_own(prep, options, model, device, train_ids, eval_ids)


@dataclass(frozen=True)
class _Rows:
    """The training rows as the own loop batches them."""

    ids: list[np.ndarray]
    lengths: np.ndarray
    targets: torch.Tensor
    pad_id: int
    batch_size: int


@dataclass(frozen=True)
class _Optimizer:
    """AdamW, its linear warm-up schedule and (fp16 on CUDA) the grad scaler: what a checkpoint keeps."""

    optimizer: Any
    scheduler: Any
    scaler: Any

    @classmethod
    def create(
        cls, model: torch.nn.Module, args: dict[str, Any], steps_per_epoch: int, epochs: int, device: str
    ) -> _Optimizer:
        import torch
        from transformers import get_linear_schedule_with_warmup

        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=args["lr"], weight_decay=WEIGHT_DECAY)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(args["warmup_ratio"] * steps_per_epoch * epochs), steps_per_epoch * epochs
        )
        use_scaler = device.startswith("cuda") and not torch.cuda.is_bf16_supported()
        return cls(optimizer, scheduler, torch.amp.GradScaler("cuda") if use_scaler else None)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def _fit_own(
    prep: Prepared,
    options: TrainOptions,
    model: torch.nn.Module,
    device: str,
    train_ids: list[np.ndarray],
    eval_ids: list[np.ndarray],
) -> tuple[EvalReport, dict[str, Any]]:
    """The epoch loop with per-epoch eval and checkpoints."""
    import torch
    from tqdm.auto import tqdm

    epochs, name = prep.epochs, prep.domain.name
    pad_id = prep.tokenizer.pad_token_id if prep.tokenizer.pad_token_id is not None else 0
    rows = _Rows(
        train_ids,
        np.array([len(r) for r in train_ids]),
        torch.tensor(prep.train.labels, dtype=torch.long),
        pad_id,
        prep.recipe.batch_size,
    )
    steps_per_epoch = -(-len(train_ids) // rows.batch_size)
    model.to(device).train()
    opt = _Optimizer.create(model, prep.args, steps_per_epoch, epochs, device)
    tracker, start_epoch = _start(prep, options, model, opt, steps_per_epoch)
    bar = tqdm(
        total=steps_per_epoch * epochs,
        initial=start_epoch * steps_per_epoch,
        unit="step",
        desc=f"{name} epoch {start_epoch + 1}/{epochs}",
        disable=not options.progress,
        dynamic_ncols=True,
    )
    try:
        for epoch in range(start_epoch, epochs):
            if tracker.should_stop():
                break
            bar.set_description(f"{name} epoch {epoch + 1}/{epochs}")
            losses = _train_epoch(model, opt, rows, options.seed, epoch, device, tracker.history, bar)
            report = evaluate_model(model, eval_ids, prep.eval, pad_id, device)
            entry = tracker.record(epoch + 1, float(np.mean(losses)), report, model)
            _announce(options, entry, epochs)
            checkpoints.save(
                prep.run_folder,
                epoch + 1,
                model,
                opt.state_dict(),
                {"history": tracker.history},
                best=tracker.best_state,
            )
    except KeyboardInterrupt:
        done = checkpoints.latest(prep.run_folder)
        raise _interrupted(name, f"epoch {done.epoch}" if done else None) from None
    finally:
        bar.close()
    tracker.restore_best(model)
    # The registered weights are the best epoch's: evaluate exactly those once more.
    return evaluate_model(model, eval_ids, prep.eval, pad_id, device), tracker.history


def _start(
    prep: Prepared, options: TrainOptions, model: torch.nn.Module, opt: _Optimizer, steps_per_epoch: int
) -> tuple[_BestEpoch, int]:
    """A fresh history from epoch 0, or (--resume) the last checkpoint's weights, optimiser, history and best epoch."""
    if not options.resume:
        checkpoints.discard(prep.run_folder)  # a stale run with the same settings starts over
        history: dict[str, Any] = {
            "step_loss": [],
            "epochs": [],
            "train_time_s": 0.0,
            "samples": 0,
            "steps_per_epoch": steps_per_epoch,
        }
        return _BestEpoch(history, options.run_patience), 0
    found = checkpoints.latest(prep.run_folder)
    assert found is not None  # prepare() checked
    opt.load_state_dict(checkpoints.restore(found, model))
    log.info("resuming %s from epoch %d", prep.domain.name, found.epoch)
    tracker = _BestEpoch(found.state["history"], options.run_patience)
    tracker.best_state = checkpoints.restore_best(found)
    return tracker, found.epoch


def _train_epoch(
    model: torch.nn.Module,
    opt: _Optimizer,
    rows: _Rows,
    seed: int,
    epoch: int,
    device: str,
    history: dict[str, Any],
    bar: Any,
) -> list[float]:
    """One epoch of steps on length-grouped batches; returns the step losses (also added to `history`)."""
    import torch

    torch.manual_seed(seed * 1_000_003 + epoch)  # dropout: same on resume
    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    for batch in length_grouped_batches(rows.lengths, rows.batch_size, seed, epoch):
        inputs = {k: v.to(device) for k, v in collate(rows.ids, batch, rows.pad_id).items()}
        loss = _step(model, inputs, rows.targets[batch].to(device), opt.optimizer, opt.scheduler, opt.scaler, device)
        losses.append(loss)
        history["samples"] += len(batch)
        elapsed = history["train_time_s"] + time.perf_counter() - started
        bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{history['samples'] / max(elapsed, 1e-9):.1f}")
        bar.update(1)
    history["train_time_s"] += time.perf_counter() - started
    history["step_loss"].extend(losses)
    return losses


def _step(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    targets: torch.Tensor,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    device: str,
) -> float:
    """One optimiser step; returns the batch loss."""
    import torch
    import torch.nn.functional as F

    with autocast_for(device):
        logits = model(**inputs).logits
    loss = F.cross_entropy(logits.float(), targets)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], GRAD_CLIP)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _fit_trainer(
    prep: Prepared,
    options: TrainOptions,
    model: torch.nn.Module,
    device: str,
    train_ids: list[np.ndarray],
    eval_ids: list[np.ndarray],
) -> tuple[EvalReport, dict[str, Any]]:
    """The Trainer's loop (hf_loop.py) on the prepared run."""
    from loradock.adapters.training import hf_loop

    if not options.resume:
        checkpoints.discard(prep.run_folder)
    try:
        return hf_loop.fit(
            model,
            prep.tokenizer,
            train_ids,
            prep.train.labels,
            eval_ids,
            prep.eval.labels,
            prep.domain.labels,
            output_dir=prep.run_folder,
            lr=prep.args["lr"],
            epochs=prep.epochs,
            batch_size=prep.recipe.batch_size,
            seed=options.seed,
            patience=prep.args["patience"],
            device=device,
            warmup_ratio=prep.args["warmup_ratio"],
            weight_decay=WEIGHT_DECAY,
            grad_clip=GRAD_CLIP,
            report_to=options.report_to,
            progress=options.progress,
            resume=options.resume,
            on_epoch=lambda entry, epochs: _announce(options, entry, epochs),
            eval_source=prep.eval.source,
        )
    except KeyboardInterrupt:
        done = any(prep.run_folder.glob("checkpoint-*"))
        raise _interrupted(prep.domain.name, "the last finished epoch" if done else None) from None


def _interrupted(domain: str, finished: str | None) -> TrainingInterrupted:
    """Ctrl-C's error: nothing registered, and where a --resume continues from (`finished`), if anywhere."""
    resume = (
        f"Continue from {finished} with the same options plus --resume."
        if finished
        else "No epoch finished, so there is no checkpoint; run it again."
    )
    return TrainingInterrupted(f"Training of {domain!r} interrupted; nothing was registered. {resume}")


class _BestEpoch:
    """Per-epoch metrics into `history`, the best epoch's trainable weights, and early stopping."""

    def __init__(self, history: dict[str, Any], patience: int) -> None:
        self.history = history
        self.patience = patience
        self.best_state: dict[str, Any] | None = None

    def record(self, epoch: int, train_loss: float, report: EvalReport, model: torch.nn.Module) -> dict[str, Any]:
        entry = {
            "epoch": epoch,
            "train_loss": train_loss,
            "eval_loss": report.eval_loss,
            "accuracy": report.accuracy,
            "macro_f1": report.macro_f1,
        }
        self.history["epochs"].append(entry)
        best = self.history.get("best")
        if better_epoch(entry, best):
            self.history["best"] = entry
            self.history["best_epoch"] = epoch
            self.best_state = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
        return entry

    def should_stop(self) -> bool:
        """True once `patience` epochs in a row brought no better best epoch."""
        epochs = self.history["epochs"]
        since = len(epochs) - int(self.history.get("best_epoch") or 0)
        stop = self.patience > 0 and bool(epochs) and since >= self.patience
        self.history["stopped_early"] = stop
        return stop

    def restore_best(self, model: torch.nn.Module) -> None:
        import torch

        if self.best_state is None:
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in self.best_state.items():
                params[name].copy_(value.to(params[name].device))
        log.info("registering epoch %s (best eval %s)", self.history.get("best_epoch"), BEST_METRIC)


def _announce(options: TrainOptions, entry: dict[str, Any], epochs: int) -> None:
    """One line per epoch for logs and pipes (the progress bar covers a terminal)."""
    loss = f"{entry['eval_loss']:.4f}" if entry["eval_loss"] is not None else "-"
    line = (
        f"epoch {entry['epoch']}/{epochs}: train loss {entry['train_loss']:.4f}, eval loss {loss}, "
        f"accuracy {entry['accuracy']:.4f}, macro-F1 {entry['macro_f1']:.4f}"
    )
    log.info("%s", line)
    if options.on_epoch is not None:
        options.on_epoch(line)
