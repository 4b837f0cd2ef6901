"""LoRA (or full) fine-tuning of a domain's classifier, evaluated, plotted and registered.

The pipeline: check options and data (before any model loads), tokenize once
(cached), train on length-grouped dynamically padded batches with a
checkpoint per epoch, evaluate each epoch, then register the adapter with
its metrics, plots, report and eval split. Ctrl-C registers nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from loradock.registry import AdapterVersion, Artifact, Domain, LoraRecipe, Registry, VersionInfo
from loradock.registry.errors import RegistryError, UnknownDomainError
from loradock.registry.gates import QualityGate
from loradock.registry.gates import check as check_gate
from loradock.registry.names import check_alias

from loradock.adapters.label_config import save_label_config
from loradock.adapters.training import checkpoints, plots
from loradock.adapters import data as datamod
from loradock.adapters.base import base_info, load_classifier, load_tokenizer, pick_device
from loradock.adapters.registration import identify_base
from loradock.adapters.training.batching import collate, length_grouped_batches
from loradock.adapters.environment import library_versions
from loradock.adapters.errors import NoCheckpointError, TrainingInterrupted, TrainingOptionsError
from loradock.adapters.training.evaluate import EvalReport, autocast_for, better_epoch, evaluate_model
from loradock.adapters.training.hf_loop import REPORT_TO, logs_folder
from loradock.adapters.training.recipe import choose as choose_recipe
from loradock.adapters.training.tokenized import token_counts, tokenize

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Full fine-tuning moves every weight; LoRA's rate would wreck the base.
FULL_FINETUNE_LR = 5e-5
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
DEFAULT_EVAL_FRACTION = 0.2
# Best epoch = highest eval macro-F1, ties to the lower eval loss. Macro-F1, not
# loss: the gate judges predictions, and eval loss can keep falling while every
# row is still predicted as the majority class (small sets do exactly that).
BEST_METRIC = "macro_f1"
# Epochs without a better eval macro-F1 before training stops; 0 never stops early.
DEFAULT_PATIENCE = 2
# "auto": the own loop, or the Trainer when --report-to asks for its integrations.
LOOPS = ("auto", "own", "trainer")
FULL_MODEL_KIND = "full-model"


@dataclass(frozen=True)
class TrainOptions:
    """Overrides of a domain's preset; None means the domain's default."""

    data: str | None = None
    base: str | None = None
    epochs: int | None = None
    r: int | None = None
    alpha: int | None = None
    dropout: float | None = None
    target_modules: tuple[str, ...] | None = None
    lr: float | None = None
    batch_size: int | None = None
    max_length: int | None = None
    eval_data: str | None = None
    eval_fraction: float | None = None
    seed: int = 0
    alias: str | None = None
    description: str = ""
    full: bool = False
    resume: bool = False
    text_column: str = "text"
    label_column: str = "label"
    device: str = "auto"
    split: str = "train"
    eval_split: str = "test"
    progress: bool = True
    patience: int | None = None
    min_accuracy: float | None = None
    min_macro_f1: float | None = None
    force: bool = False  # move --alias even to a version that failed its gate
    # "trainer": transformers.Trainer (hf_loop.py); "own": the hand-written loop below (BENCHMARKS.md compares them);
    # "auto": own, unless report_to is set (its integrations live in the Trainer). See run_loop.
    loop: str = "auto"
    report_to: tuple[str, ...] = ()  # Trainer integrations: tensorboard, mlflow, wandb
    # Called with one line per finished epoch (train/eval metrics); the CLI prints it when piped.
    on_epoch: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, (list, str)):
            modules = self.target_modules.split(",") if isinstance(self.target_modules, str) else self.target_modules
            object.__setattr__(self, "target_modules", tuple(m.strip() for m in modules if m.strip()))
        try:
            self.recipe(LoraRecipe())  # the recipe's own rules, on the overrides
        except RegistryError as exc:
            raise TrainingOptionsError(f"Bad training option: {exc}.") from None
        if self.eval_data is not None and self.eval_fraction is not None:
            raise TrainingOptionsError("Pass either --eval-data or --eval-fraction, not both.")
        if self.eval_fraction is not None and not 0.0 < self.eval_fraction < 1.0:
            raise TrainingOptionsError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}.")
        if self.alias is not None:
            try:
                check_alias(self.alias)
            except RegistryError as exc:
                raise TrainingOptionsError(str(exc)) from None
            if self.alias == "latest":
                raise TrainingOptionsError("'latest' moves by itself to every new version; pass another --alias.")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise TrainingOptionsError(f"Unknown device {self.device!r}: use auto, cpu or cuda[:N].")
        if not self.text_column or not self.label_column:
            raise TrainingOptionsError("--text-column and --label-column must not be empty.")
        if self.report_to is None:
            object.__setattr__(self, "report_to", ())
        if isinstance(self.report_to, str):
            object.__setattr__(self, "report_to", tuple(x.strip() for x in self.report_to.split(",") if x.strip()))
        if self.loop not in LOOPS:
            raise TrainingOptionsError(f"Unknown training loop {self.loop!r}: use one of {', '.join(LOOPS)}.")
        unknown = [r for r in self.report_to if r not in REPORT_TO]
        if unknown:
            raise TrainingOptionsError(f"Unknown --report-to {', '.join(unknown)}: use any of {', '.join(REPORT_TO)}.")
        if self.report_to and self.loop == "own":
            raise TrainingOptionsError(
                f"--report-to {','.join(self.report_to)} goes through transformers.Trainer, but --loop own was passed: "
                "drop --loop own (auto then runs the Trainer) or pass --loop trainer.")
        if self.patience is not None and self.patience < 0:
            raise TrainingOptionsError(f"patience must be >= 0 (0: never stop early), got {self.patience}.")
        try:
            self.gate()
        except RegistryError as exc:
            raise TrainingOptionsError(f"Bad gate option: {exc}") from None

    @property
    def run_loop(self) -> str:
        """The loop that runs: "own" or "trainer" (auto resolved)."""
        if self.loop == "auto":
            return "trainer" if self.report_to else "own"
        return self.loop

    def gate(self) -> QualityGate:
        """This run's gate thresholds (they override the domain's)."""
        return QualityGate(min_accuracy=self.min_accuracy, min_macro_f1=self.min_macro_f1)

    def recipe(self, default: LoraRecipe) -> LoraRecipe:
        """`default` with this run's overrides applied (and validated)."""
        names = {f.name for f in fields(LoraRecipe)}
        overrides = {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}
        return LoraRecipe.from_dict({**default.to_dict(), **overrides})


@dataclass(frozen=True)
class TrainResult:
    """A registered adapter version (None for --full) and its evaluation."""

    version: AdapterVersion | None
    report: EvalReport
    artifact: Artifact | None = None
    history: dict[str, Any] = field(default_factory=dict)
    train_args: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    created_domain: bool = False  # the domain was made from the data's labels

    @property
    def failed(self) -> bool:
        return self.gate.get("passed") is False


@dataclass
class _Prepared:
    """Everything decided before a model loads."""

    domain: Domain
    recipe: LoraRecipe
    train: datamod.LabelledData
    eval: datamod.LabelledData
    base: dict[str, Any]
    args: dict[str, Any]
    data_meta: dict[str, Any]
    run_folder: Path
    cache: Path
    tokenizer: Any  # the base's, loaded once: it counts the texts' lengths and tokenizes them
    new_domain: bool = False  # stored only when the version is registered


def _position_limit(base: dict[str, Any]) -> int | None:
    """How many positions the base reads (config.json's max_position_embeddings), if it says."""
    import json

    config_path = Path(base["local_path"]) / "config.json"
    limit = json.loads(config_path.read_text()).get("max_position_embeddings") if config_path.is_file() else None
    return limit if isinstance(limit, int) and limit > 0 else None


def _check_max_length(base: dict[str, Any], max_length: int) -> None:
    """Longer than the base's position table would crash mid-training; refuse it now."""
    limit = _position_limit(base)
    if limit is not None and max_length > limit:
        raise TrainingOptionsError(
            f"max_length {max_length} exceeds what base {base['base_model']!r} can read ({limit} positions); "
            f"pass --max-length {limit} or less."
        )


def prepare(registry: Registry, domain_name: str, options: TrainOptions) -> _Prepared:
    """Resolve defaults and check data and base; raises before any training starts."""
    common = {"text_column": options.text_column, "label_column": options.label_column}
    try:
        domain, new_domain = registry.domain(domain_name), False
    except UnknownDomainError:
        if not options.data:
            raise
        labels = datamod.infer_labels(options.data, split=options.split, **common)
        domain, new_domain = Domain(name=domain_name, labels=labels, description=f"Created from {options.data}"), True
        log.info("new domain %s with labels from the data: %s", domain_name, ", ".join(labels))
    recipe = options.recipe(domain.recipe)
    source = options.data or domain.dataset or f"embedded:{domain.name}"
    full_data = datamod.load(source, domain.labels, split=options.split, **common)
    if options.eval_data:
        train_data = full_data
        eval_data = datamod.load(options.eval_data, domain.labels, split=options.eval_split, **common)
    else:
        fraction = options.eval_fraction if options.eval_fraction is not None else DEFAULT_EVAL_FRACTION
        train_data, eval_data = datamod.split_eval(full_data, fraction, options.seed)
    datamod.check_trainable(train_data)
    base_name = options.base or domain.base_model
    base = base_info(base_name, domain.base_revision if options.base is None else None)
    # A local --base folder is recorded by its Hub id when its weights are known, so a push can be pulled.
    identity = identify_base(base_name, base["base_revision"], registry)
    base.update(identity.record(), provenance=identity.provenance())
    runs = checkpoints.run_dir(registry.home, domain.name, "*")
    if options.resume and not any(runs.parent.glob(runs.name)):  # nothing to resume: say so before tokenizing
        raise _no_checkpoint(domain.name, runs)
    # Epochs, rate, warm-up and max_length from the data where neither the run nor the domain set them.
    tokenizer = load_tokenizer(base_name, base["base_revision"]) if _length_from_data(options, domain) else None
    lengths = _train_lengths(registry, tokenizer, base, train_data) if tokenizer is not None else None
    chosen = choose_recipe(len(train_data), len(domain.labels), recipe.batch_size, lengths, _position_limit(base))
    recipe = dataclasses.replace(recipe, epochs=recipe.epochs or chosen.epochs, lr=recipe.lr or chosen.lr,
                                 max_length=chosen.max_length or recipe.max_length)
    _check_max_length(base, recipe.max_length)
    lr = options.lr if options.lr is not None else (FULL_FINETUNE_LR if options.full else recipe.lr)
    args: dict[str, Any] = {
        **recipe.to_dict(), "lr": lr, "seed": options.seed, "full": options.full,
        "eval_fraction": None if options.eval_data else (options.eval_fraction or DEFAULT_EVAL_FRACTION),
        "eval_data": options.eval_data, "split": options.split, "optimizer": "adamw",
        "weight_decay": WEIGHT_DECAY, "warmup_ratio": chosen.warmup_ratio, "scheduler": "linear", "grad_clip": GRAD_CLIP,
        "recipe_rule": chosen.to_dict(),
        "base": base_name, "padding": "dynamic, length-grouped",
        "patience": DEFAULT_PATIENCE if options.patience is None else options.patience, "best_metric": BEST_METRIC,
        "loop": options.run_loop,
    }
    if options.full:
        for key in ("r", "alpha", "dropout", "target_modules"):
            args.pop(key)
    data_meta = {
        "source": source, "fingerprint": train_data.fingerprint, "train_size": len(train_data),
        "eval_size": len(eval_data), "text_column": options.text_column, "label_column": options.label_column,
        "eval_source": eval_data.source, "eval_fingerprint": eval_data.fingerprint,
        "train_counts": train_data.counts(), "eval_counts": eval_data.counts(),
    }
    key = checkpoints.run_key({
        "domain": domain.name, "args": args, "train": train_data.fingerprint, "eval": eval_data.fingerprint,
        "base": base["base_fingerprint"], "labels": list(domain.labels),
    })
    run_folder = checkpoints.run_dir(registry.home, domain.name, key)
    found = any(run_folder.glob("checkpoint-*")) if options.run_loop == "trainer" else checkpoints.latest(run_folder)
    if options.resume and not found:
        raise _no_checkpoint(domain.name, run_folder)
    return _Prepared(domain, recipe, train_data, eval_data, base, args, data_meta, run_folder, registry.home / "cache",
                     tokenizer or load_tokenizer(base_name, base["base_revision"]), new_domain)


def _no_checkpoint(domain: str, where: Path) -> NoCheckpointError:
    return NoCheckpointError(
        f"No interrupted run of {domain!r} with these settings to resume ({where} holds no checkpoint); "
        "run again without --resume, or with exactly the options of the interrupted run."
    )


def _length_from_data(options: TrainOptions, domain: Domain) -> bool:
    """Whether max_length is the data's to choose: the run's --max-length wins, then a domain's own (any value
    but LoraRecipe's default, see recipe.py)."""
    return options.max_length is None and domain.recipe.max_length == LoraRecipe().max_length


def _train_lengths(registry: Registry, tokenizer: Any, base: dict[str, Any],
                   train_data: datamod.LabelledData) -> np.ndarray:
    """Token counts of the training texts, counted up to the base's position limit (the choice is clamped to
    it anyway)."""
    return token_counts(tokenizer, train_data.texts, train_data.fingerprint, _position_limit(base), registry.home / "cache")


def _build_model(prep: _Prepared, options: TrainOptions) -> torch.nn.Module:
    import torch

    torch.manual_seed(options.seed)  # head init and LoRA A init
    model = load_classifier(prep.args["base"], prep.domain.labels,
                            prep.base["base_revision"])
    model.name_or_path = model.config._name_or_path = prep.base["base_model"]  # PEFT writes it into adapter_config
    if options.full:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    from loradock.adapters.architectures import head_modules, lora_targets

    # "query,value" is a role: each architecture names (or fuses) its projections differently,
    # and heads with layers the base lacks (RoBERTa, DistilBERT, DeBERTa, ModernBERT) must be saved whole.
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=prep.recipe.r, lora_alpha=prep.recipe.alpha,
        lora_dropout=prep.recipe.dropout, target_modules=lora_targets(model.config, prep.recipe.target_modules),
        modules_to_save=head_modules(model.config),
    )
    try:
        with warnings.catch_warnings():
            # transformers' own deprecation, raised from inside PEFT; nothing a user can act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules the base does not have
        import torch

        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise TrainingOptionsError(
            f"Cannot attach LoRA to {prep.args['base']!r} with target modules {list(prep.recipe.target_modules)} "
            f"({str(exc).split('.')[0]}); its linear layers are: {', '.join(linear)}. Pick from those with --target-modules."
        ) from None


def _param_counts(model: torch.nn.Module) -> dict[str, Any]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total, "trainable_pct": 100.0 * trainable / total}


def _step(model: torch.nn.Module, inputs: dict[str, torch.Tensor], targets: torch.Tensor,
          optimizer: Any, scheduler: Any, scaler: Any, device: str) -> float:
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


def _fit(prep: _Prepared, options: TrainOptions, model: torch.nn.Module, tokenizer: Any,
         device: str) -> tuple[EvalReport, dict[str, Any]]:
    """The epoch loop with per-epoch eval and checkpoints; returns the final report and history."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    max_length, batch_size, epochs = prep.recipe.max_length, prep.recipe.batch_size, prep.recipe.epochs
    train_ids = tokenize(tokenizer, prep.train.texts, prep.train.fingerprint, max_length, prep.cache)
    eval_ids = tokenize(tokenizer, prep.eval.texts, prep.eval.fingerprint, max_length, prep.cache)
    if options.run_loop == "trainer":
        return _fit_trainer(prep, options, model, tokenizer, device, train_ids, eval_ids)
    lengths = np.array([len(r) for r in train_ids])
    targets = torch.tensor(prep.train.labels, dtype=torch.long)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    steps_per_epoch = -(-len(train_ids) // batch_size)

    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=prep.args["lr"], weight_decay=WEIGHT_DECAY)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(prep.args["warmup_ratio"] * steps_per_epoch * epochs), steps_per_epoch * epochs
    )
    use_scaler = device.startswith("cuda") and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    history: dict[str, Any] = {"step_loss": [], "epochs": [], "train_time_s": 0.0, "samples": 0,
                               "steps_per_epoch": steps_per_epoch}
    start_epoch = 0
    found = checkpoints.latest(prep.run_folder) if options.resume else None
    if options.resume:
        assert found is not None  # prepare() checked
        state = checkpoints.restore(found, model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, start_epoch = found.state["history"], found.epoch
        log.info("resuming %s from epoch %d", prep.domain.name, start_epoch)
    else:
        checkpoints.discard(prep.run_folder)  # a stale run with the same settings starts over

    tracker = _BestEpoch(history, DEFAULT_PATIENCE if options.patience is None else options.patience)
    if options.resume and found is not None:
        tracker.best_state = checkpoints.restore_best(found)
    bar = tqdm(total=steps_per_epoch * epochs, initial=start_epoch * steps_per_epoch, unit="step",
               desc=f"{prep.domain.name} epoch {start_epoch + 1}/{epochs}", disable=not options.progress,
               dynamic_ncols=True)
    try:
        for epoch in range(start_epoch, epochs):
            if tracker.should_stop():
                break
            bar.set_description(f"{prep.domain.name} epoch {epoch + 1}/{epochs}")
            torch.manual_seed(options.seed * 1_000_003 + epoch)  # dropout: same on resume
            model.train()
            epoch_losses: list[float] = []
            started = time.perf_counter()
            for batch in length_grouped_batches(lengths, batch_size, options.seed, epoch):
                inputs = {k: v.to(device) for k, v in collate(train_ids, batch, pad_id).items()}
                loss = _step(model, inputs, targets[batch].to(device), optimizer, scheduler, scaler, device)
                epoch_losses.append(loss)
                history["samples"] += len(batch)
                elapsed = history["train_time_s"] + time.perf_counter() - started
                bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{history['samples'] / max(elapsed, 1e-9):.1f}")
                bar.update(1)
            history["train_time_s"] += time.perf_counter() - started
            history["step_loss"].extend(epoch_losses)
            report = evaluate_model(model, eval_ids, prep.eval, pad_id, device)
            entry = tracker.record(epoch + 1, float(np.mean(epoch_losses)), report, model)
            _announce(options, entry, epochs)
            checkpoints.save(prep.run_folder, epoch + 1, model, {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
            }, {"history": history}, best=tracker.best_state)
    except KeyboardInterrupt:
        done = checkpoints.latest(prep.run_folder)
        resume = (f"Continue from epoch {done.epoch} with the same options plus --resume."
                  if done else "No epoch finished, so there is no checkpoint; run it again.")
        raise TrainingInterrupted(f"Training of {prep.domain.name!r} interrupted; nothing was registered. {resume}") from None
    finally:
        bar.close()
    tracker.restore_best(model)
    # The registered weights are the best epoch's: evaluate exactly those once more.
    return evaluate_model(model, eval_ids, prep.eval, pad_id, device), history


def _fit_trainer(prep: _Prepared, options: TrainOptions, model: torch.nn.Module, tokenizer: Any, device: str,
                 train_ids: list[np.ndarray], eval_ids: list[np.ndarray]) -> tuple[EvalReport, dict[str, Any]]:
    from loradock.adapters.training import hf_loop

    if not options.resume:
        checkpoints.discard(prep.run_folder)
    try:
        return hf_loop.fit(
            model, tokenizer, train_ids, prep.train.labels, eval_ids, prep.eval.labels, prep.domain.labels,
            output_dir=prep.run_folder, lr=prep.args["lr"], epochs=prep.recipe.epochs, batch_size=prep.recipe.batch_size,
            seed=options.seed, patience=prep.args["patience"], device=device, warmup_ratio=prep.args["warmup_ratio"],
            weight_decay=WEIGHT_DECAY, grad_clip=GRAD_CLIP, report_to=options.report_to, progress=options.progress,
            resume=options.resume, on_epoch=lambda entry, epochs: _announce(options, entry, epochs),
            eval_source=prep.eval.source,
        )
    except KeyboardInterrupt:
        done = any(prep.run_folder.glob("checkpoint-*"))
        resume = ("Continue from the last finished epoch with the same options plus --resume."
                  if done else "No epoch finished, so there is no checkpoint; run it again.")
        raise TrainingInterrupted(f"Training of {prep.domain.name!r} interrupted; nothing was registered. {resume}") from None


class _BestEpoch:
    """Per-epoch metrics into `history`, the best epoch's trainable weights, and early stopping."""

    def __init__(self, history: dict[str, Any], patience: int) -> None:
        self.history = history
        self.patience = patience
        self.best_state: dict[str, Any] | None = None

    def record(self, epoch: int, train_loss: float, report: EvalReport, model: torch.nn.Module) -> dict[str, Any]:
        entry = {"epoch": epoch, "train_loss": train_loss, "eval_loss": report.eval_loss,
                 "accuracy": report.accuracy, "macro_f1": report.macro_f1}
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
    line = (f"epoch {entry['epoch']}/{epochs}: train loss {entry['train_loss']:.4f}, eval loss {loss}, "
            f"accuracy {entry['accuracy']:.4f}, macro-F1 {entry['macro_f1']:.4f}")
    log.info("%s", line)
    if options.on_epoch is not None:
        options.on_epoch(line)


def _write_outputs(folder: Path, prep: _Prepared, report: EvalReport, history: dict[str, Any],
                   extra: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Path]:
    """Plots, metrics.json and eval.jsonl in `folder`; returns {file name: path}."""
    import json

    epochs = history["epochs"]
    name = prep.domain.name
    files = {
        "loss.png": plots.loss_curve(history["step_loss"], history["steps_per_epoch"], folder / "loss.png",
                                     [e["eval_loss"] for e in epochs], title=f"{name}: training loss"),
        "accuracy.png": plots.accuracy_curve([e["accuracy"] for e in epochs], folder / "accuracy.png",
                                             [e["macro_f1"] for e in epochs], title=f"{name}: validation accuracy per epoch",
                                             best_epoch=history.get("best_epoch"),
                                             baseline=(extra.get("gate") or {}).get("baseline", {}).get("accuracy")),
        "confusion.png": plots.confusion_heatmap(report.confusion_matrix, report.labels, folder / "confusion.png",
                                                 title=f"{name}: confusion matrix ({report.size} eval examples)"),
    }
    (folder / "metrics.json").write_text(json.dumps({
        "metrics": metrics, "history": history, "train_args": prep.args, "data": prep.data_meta, "extra": extra,
    }, indent=2))
    files["metrics.json"] = folder / "metrics.json"
    files["eval.jsonl"] = datamod.write_jsonl(prep.eval, folder / "eval.jsonl")
    return files


def _metrics(report: EvalReport, history: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The best epoch's eval metrics, plus how the run went (loop, length, time, speed, epochs)."""
    p95 = args["recipe_rule"].get("length_p95")
    best = history.get("best") or (history["epochs"][-1] if history["epochs"] else {})
    return {
        **report.to_metrics(), "train_loss": best.get("train_loss"), "best_epoch": history.get("best_epoch"),
        "best_metric": BEST_METRIC, "epochs_run": len(history["epochs"]),
        "stopped_early": bool(history.get("stopped_early")), "train_time_s": history["train_time_s"],
        "samples_per_s": history["samples"] / max(history["train_time_s"], 1e-9),
        "loop": args["loop"], "max_length": args["max_length"], **({"length_p95": p95} if p95 is not None else {}),
    }


def _register_adapter(registry: Registry, prep: _Prepared, options: TrainOptions, model: Any, outputs: dict[str, Path],
                      folder: Path, metrics: dict[str, Any], extra: dict[str, Any], gate: dict[str, Any]) -> AdapterVersion:
    adapter = folder / "adapter"
    model.save_pretrained(str(adapter), safe_serialization=True, save_embedding_layers=False)
    save_label_config(model, adapter)  # label names for plain PEFT/transformers loading (README)
    info = VersionInfo(
        base_model=prep.base["base_model"], base_revision=prep.base["base_revision"],
        base_fingerprint=prep.base["base_fingerprint"], data=prep.data_meta, metrics=metrics,
        train_args=prep.args, description=options.description, extra=extra,
        provenance={"source": "adapters train", "run": prep.run_folder.name, **prep.base["provenance"]}, gate=gate,
    )
    # The alias moves last: a failure below must leave it on the version it named.
    version = registry.register(prep.domain.name, adapter, info)
    if getattr(version, "reused", False):  # the same files are already a version, with their artifacts
        log.info("these weights are already %s; nothing new registered", version.ref)
    else:
        _add_artifacts(registry, prep, version, outputs)
    if options.alias and (not version.failed or options.force):
        registry.set_alias(version.domain, options.alias, version.number, force=options.force)
    elif options.alias:
        log.warning("%s failed its gate; %s@%s stays where it was (pass force to move it anyway)",
                    version.ref, version.domain, options.alias)
    return registry.resolve(version.ref)


def _add_artifacts(registry: Registry, prep: _Prepared, version: AdapterVersion, outputs: dict[str, Path]) -> None:
    """Plots, report and eval split; a version left without them is half-done, so it is hidden again."""
    try:
        for plot in ("loss", "accuracy", "confusion"):
            registry.add_artifact(version.ref, "plot", plot, {f"{plot}.png": outputs[f"{plot}.png"]})
        registry.add_artifact(version.ref, "report", "metrics", {"metrics.json": outputs["metrics.json"]})
        logs = {name[len("logs/"):]: path for name, path in outputs.items() if name.startswith("logs/")}
        if logs:
            registry.add_artifact(version.ref, "logs", "train", logs)
        registry.add_artifact(version.ref, "data", "eval", {"eval.jsonl": outputs["eval.jsonl"]},
                              meta={"size": len(prep.eval), "fingerprint": prep.eval.fingerprint,
                                    "source": prep.eval.source})
    except BaseException:
        # A version without its artifacts is half-done: hide it again.
        registry.remove(version.ref, force=True)
        raise


def _register_full(registry: Registry, prep: _Prepared, model: Any, tokenizer: Any, outputs: dict[str, Path],
                   folder: Path, metrics: dict[str, Any], extra: dict[str, Any]) -> Artifact:
    out = folder / "model"
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    files = {p.name: p for p in out.iterdir() if p.is_file()}
    files.update(outputs)
    existing = registry.domain_artifacts(prep.domain.name, FULL_MODEL_KIND)
    name = f"full-{len(existing) + 1}"
    return registry.add_domain_artifact(prep.domain.name, FULL_MODEL_KIND, name, files, meta={
        "metrics": metrics, "train_args": prep.args, "data": prep.data_meta, "extra": extra,
        "base_model": prep.base["base_model"], "base_fingerprint": prep.base["base_fingerprint"],
    })


def train(registry: Registry, domain: str, options: TrainOptions | None = None) -> TrainResult:
    """Train `domain` with its preset overridden by `options`; register the result.

    LoRA runs become the domain's next version (``latest`` moves, and
    ``options.alias`` too); ``options.full`` runs become a ``full-model``
    artifact of the domain. Raises before training on bad options or data,
    and TrainingInterrupted (nothing registered) on Ctrl-C.
    """
    options = options or TrainOptions()
    prep = prepare(registry, domain, options)
    device = pick_device(options.device)
    started = time.perf_counter()
    tokenizer = prep.tokenizer
    model = _build_model(prep, options)
    counts = _param_counts(model)
    log.info("training %s on %d examples (%s trainable of %s parameters)", domain, len(prep.train),
             counts["trainable_params"], counts["total_params"])
    report, history = _fit(prep, options, model, tokenizer, device)
    wall = time.perf_counter() - started
    metrics = _metrics(report, history, prep.args)
    gate = check_gate(metrics, prep.eval.counts(), prep.domain.gate.merged(options.gate()))
    extra = {
        **counts, "wall_time_s": wall, "train_time_s": history["train_time_s"], "device": device,
        "samples_per_s": metrics["samples_per_s"],
        "libraries": library_versions(), "epochs": history["epochs"], "resumed": options.resume,
    }
    if gate["passed"]:
        log.info("%s passed its quality gate", domain)
    else:
        log.warning("%s failed its quality gate: %s", domain, "; ".join(gate["reasons"]))
    with tempfile.TemporaryDirectory(prefix="loradock-train-") as tmp:
        folder = Path(tmp)
        model.to("cpu")
        outputs = _write_outputs(folder, prep, report, history, {**extra, "gate": gate}, metrics)
        logs = logs_folder(prep.run_folder)  # report_to event files: kept with the version
        if logs is not None:
            outputs.update({f"logs/{p.relative_to(logs).as_posix()}": p for p in sorted(logs.rglob("*")) if p.is_file()})
        if prep.new_domain:
            registry.add_domain(prep.domain)
        try:
            if options.full:
                artifact = _register_full(registry, prep, model, tokenizer, outputs, folder, metrics, {**extra, "gate": gate})
                result = TrainResult(None, report, artifact, history, prep.args, extra, gate, prep.new_domain)
            else:
                version = _register_adapter(registry, prep, options, model, outputs, folder, metrics, extra, gate)
                result = TrainResult(version, report, None, history, prep.args, extra, gate, prep.new_domain)
        except BaseException:
            if prep.new_domain:  # a domain made for this run goes with it
                registry.remove_domain(prep.domain.name, force=True)
            raise
    checkpoints.discard(prep.run_folder)  # registered: the run is complete
    return result


