"""LoRA (or full) fine-tuning of a domain's classifier, evaluated, plotted and registered.

The pipeline: check options and data (before any model loads), tokenize once
(cached), train on length-grouped dynamically padded batches with a
checkpoint per epoch, evaluate each epoch, then register the adapter with
its metrics, plots, report and eval split. Ctrl-C registers nothing.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loradock.registry import AdapterVersion, Artifact, Domain, LoraRecipe, Registry, VersionInfo
from loradock.registry.errors import RegistryError
from loradock.registry.names import check_alias

from loradock.adapters.training import checkpoints, plots
from loradock.adapters import data as datamod
from loradock.adapters.label_config import save_label_config
from loradock.adapters.base import base_info, load_classifier, load_tokenizer, pick_device
from loradock.adapters.training.batching import collate, length_grouped_batches
from loradock.adapters.environment import library_versions
from loradock.adapters.errors import NoCheckpointError, TrainingInterrupted, TrainingOptionsError
from loradock.adapters.training.evaluate import EvalReport, autocast_for, evaluate_model
from loradock.adapters.training.tokenized import tokenize

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Full fine-tuning moves every weight; LoRA's rate would wreck the base.
FULL_FINETUNE_LR = 5e-5
WARMUP_RATIO = 0.1
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
DEFAULT_EVAL_FRACTION = 0.2
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


def _check_max_length(base: dict[str, Any], max_length: int) -> None:
    """Longer than the base's position table would crash mid-training; refuse it now."""
    import json

    config_path = Path(base["local_path"]) / "config.json"
    limit = json.loads(config_path.read_text()).get("max_position_embeddings") if config_path.is_file() else None
    if isinstance(limit, int) and max_length > limit:
        raise TrainingOptionsError(
            f"max_length {max_length} exceeds what base {base['base_model']!r} can read ({limit} positions); "
            f"pass --max-length {limit} or less."
        )


def prepare(registry: Registry, domain_name: str, options: TrainOptions) -> _Prepared:
    """Resolve defaults and check data and base; raises before any training starts."""
    domain = registry.domain(domain_name)
    recipe = options.recipe(domain.recipe)
    source = options.data or domain.dataset or f"embedded:{domain.name}"
    common = {"text_column": options.text_column, "label_column": options.label_column}
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
    _check_max_length(base, recipe.max_length)
    lr = options.lr if options.lr is not None else (FULL_FINETUNE_LR if options.full else recipe.lr)
    args: dict[str, Any] = {
        **recipe.to_dict(), "lr": lr, "seed": options.seed, "full": options.full,
        "eval_fraction": None if options.eval_data else (options.eval_fraction or DEFAULT_EVAL_FRACTION),
        "eval_data": options.eval_data, "split": options.split, "optimizer": "adamw",
        "weight_decay": WEIGHT_DECAY, "warmup_ratio": WARMUP_RATIO, "scheduler": "linear", "grad_clip": GRAD_CLIP,
        "base": base_name, "padding": "dynamic, length-grouped",
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
    if options.resume and checkpoints.latest(run_folder) is None:
        raise NoCheckpointError(
            f"No interrupted run of {domain.name!r} with these settings to resume ({run_folder} holds no checkpoint); "
            "run again without --resume, or with exactly the options of the interrupted run."
        )
    return _Prepared(domain, recipe, train_data, eval_data, base, args, data_meta, run_folder, registry.home / "cache")


def _build_model(prep: _Prepared, options: TrainOptions) -> torch.nn.Module:
    import torch

    torch.manual_seed(options.seed)  # head init and LoRA A init
    model = load_classifier(prep.args["base"], prep.domain.labels,
                            prep.base["base_revision"])
    if options.full:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=prep.recipe.r, lora_alpha=prep.recipe.alpha,
        lora_dropout=prep.recipe.dropout, target_modules=list(prep.recipe.target_modules),
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
    lengths = np.array([len(r) for r in train_ids])
    targets = torch.tensor(prep.train.labels, dtype=torch.long)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    steps_per_epoch = -(-len(train_ids) // batch_size)

    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=prep.args["lr"], weight_decay=WEIGHT_DECAY)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(WARMUP_RATIO * steps_per_epoch * epochs), steps_per_epoch * epochs
    )
    use_scaler = device.startswith("cuda") and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    history: dict[str, Any] = {"step_loss": [], "epochs": [], "train_time_s": 0.0, "samples": 0,
                               "steps_per_epoch": steps_per_epoch}
    start_epoch = 0
    if options.resume:
        found = checkpoints.latest(prep.run_folder)
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

    report: EvalReport | None = None
    bar = tqdm(total=steps_per_epoch * epochs, initial=start_epoch * steps_per_epoch, unit="step",
               desc=f"{prep.domain.name} epoch {start_epoch + 1}/{epochs}", disable=not options.progress,
               dynamic_ncols=True)
    try:
        for epoch in range(start_epoch, epochs):
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
            history["epochs"].append({
                "epoch": epoch + 1, "train_loss": float(np.mean(epoch_losses)), "eval_loss": report.eval_loss,
                "accuracy": report.accuracy, "macro_f1": report.macro_f1,
            })
            log.info("epoch %d: train loss %.4f, eval accuracy %.4f", epoch + 1, np.mean(epoch_losses), report.accuracy)
            checkpoints.save(prep.run_folder, epoch + 1, model, {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
            }, {"history": history})
    except KeyboardInterrupt:
        done = checkpoints.latest(prep.run_folder)
        resume = (f"Continue from epoch {done.epoch} with the same options plus --resume."
                  if done else "No epoch finished, so there is no checkpoint; run it again.")
        raise TrainingInterrupted(f"Training of {prep.domain.name!r} interrupted; nothing was registered. {resume}") from None
    finally:
        bar.close()
    if report is None:  # resumed a run whose last epoch was done: evaluate once more
        report = evaluate_model(model, eval_ids, prep.eval, pad_id, device)
    return report, history


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
                                             [e["macro_f1"] for e in epochs], title=f"{name}: validation accuracy per epoch"),
        "confusion.png": plots.confusion_heatmap(report.confusion_matrix, report.labels, folder / "confusion.png",
                                                 title=f"{name}: confusion matrix ({report.size} eval examples)"),
    }
    (folder / "metrics.json").write_text(json.dumps({
        "metrics": metrics, "history": history, "train_args": prep.args, "data": prep.data_meta, "extra": extra,
    }, indent=2))
    files["metrics.json"] = folder / "metrics.json"
    files["eval.jsonl"] = datamod.write_jsonl(prep.eval, folder / "eval.jsonl")
    return files


def _register_adapter(registry: Registry, prep: _Prepared, options: TrainOptions, model: Any, outputs: dict[str, Path],
                      folder: Path, metrics: dict[str, Any], extra: dict[str, Any]) -> AdapterVersion:
    adapter = folder / "adapter"
    model.save_pretrained(str(adapter), safe_serialization=True, save_embedding_layers=False)
    save_label_config(model, adapter)  # label names for plain PEFT/transformers loading (README)
    info = VersionInfo(
        base_model=prep.base["base_model"], base_revision=prep.base["base_revision"],
        base_fingerprint=prep.base["base_fingerprint"], data=prep.data_meta, metrics=metrics,
        train_args=prep.args, description=options.description, extra=extra,
        provenance={"source": "adapters train", "run": prep.run_folder.name},
    )
    # The alias moves last: a failure below must leave it on the version it named.
    version = registry.register(prep.domain.name, adapter, info)
    try:
        for plot in ("loss", "accuracy", "confusion"):
            registry.add_artifact(version.ref, "plot", plot, {f"{plot}.png": outputs[f"{plot}.png"]})
        registry.add_artifact(version.ref, "report", "metrics", {"metrics.json": outputs["metrics.json"]})
        registry.add_artifact(version.ref, "data", "eval", {"eval.jsonl": outputs["eval.jsonl"]},
                              meta={"size": len(prep.eval), "fingerprint": prep.eval.fingerprint,
                                    "source": prep.eval.source})
    except BaseException:
        # A version without its artifacts is half-done: hide it again.
        registry.remove(version.ref, force=True)
        raise
    if options.alias:
        registry.set_alias(version.domain, options.alias, version.number)
    return registry.resolve(version.ref)


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
    tokenizer = load_tokenizer(prep.args["base"], prep.base["base_revision"])
    model = _build_model(prep, options)
    counts = _param_counts(model)
    log.info("training %s on %d examples (%s trainable of %s parameters)", domain, len(prep.train),
             counts["trainable_params"], counts["total_params"])
    report, history = _fit(prep, options, model, tokenizer, device)
    wall = time.perf_counter() - started
    metrics = {**report.to_metrics(), "train_loss": history["epochs"][-1]["train_loss"] if history["epochs"] else None}
    extra = {
        **counts, "wall_time_s": wall, "train_time_s": history["train_time_s"], "device": device,
        "samples_per_s": history["samples"] / max(history["train_time_s"], 1e-9),
        "libraries": library_versions(), "epochs": history["epochs"], "resumed": options.resume,
    }
    with tempfile.TemporaryDirectory(prefix="loradock-train-") as tmp:
        folder = Path(tmp)
        model.to("cpu")
        outputs = _write_outputs(folder, prep, report, history, extra, metrics)
        if options.full:
            artifact = _register_full(registry, prep, model, tokenizer, outputs, folder, metrics, extra)
            result = TrainResult(None, report, artifact, history, prep.args, extra)
        else:
            version = _register_adapter(registry, prep, options, model, outputs, folder, metrics, extra)
            result = TrainResult(version, report, None, history, prep.args, extra)
    checkpoints.discard(prep.run_folder)  # registered: the run is complete
    return result


