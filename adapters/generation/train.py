"""LoRA for a text-generation domain: data checked, Trainer run, eval against the base, registered.

The loop is transformers' `Trainer` (not loradock's own classification loop): it
already gives resume from checkpoints, `report_to`, bf16 where CUDA has it and
early stopping, and the issue asks for a well-kept trainer unless a measurement
says ours wins; what is ours is the completion-only collator (data.py) and the
final token-weighted eval (evaluate.py). CPU runs fp32.

The version goes through the same `Registry.register` as classification, with task
text-generation (from the domain), the eval losses and perplexities of the adapter
and of its base (adapter disabled) in its metrics, and a loss plot, the report
and the eval split as artifacts.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loradock.adapters.base import pick_device
from loradock.adapters.environment import library_versions
from loradock.adapters.errors import DataError, NoCheckpointError, TrainingOptionsError
from loradock.adapters.generation import data as gdata
from loradock.adapters.generation import evaluate, recipe
from loradock.adapters.generation.base import load_causal_lm, load_causal_tokenizer, read_record
from loradock.adapters.registration import identify_base
from loradock.adapters.training import checkpoints, plots
from loradock.adapters.training.hf_loop import REPORT_TO, recorder
from loradock.adapters.training.options import DEFAULT_EVAL_FRACTION, DEFAULT_PATIENCE, TrainOptions
from loradock.adapters.training.register import history_metrics, log_files
from loradock.registry import AdapterVersion, Domain, LoraRecipe, Registry, VersionInfo
from loradock.registry.domains import GENERATION_RECIPE

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

BEST_METRIC = "eval_loss"  # the epoch kept: lowest eval loss (there is no task metric yet)


@dataclass(frozen=True)
class GenerationResult:
    """A registered generation version and its evaluation against the base."""

    version: AdapterVersion
    report: evaluate.GenerationReport
    history: dict[str, Any] = field(default_factory=dict)
    train_args: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)  # no generation gate yet: registered unchecked
    created_domain: bool = False

    @property
    def failed(self) -> bool:
        return self.gate.get("passed") is False


@dataclass
class _Prepared:
    domain: Domain
    lora: LoraRecipe
    chosen: recipe.GenerationRecipe
    train: gdata.GenerationData
    eval: gdata.GenerationData
    train_rows: list[gdata.Encoded]
    eval_rows: list[gdata.Encoded]
    tokenizer: Any
    base: dict[str, Any]
    args: dict[str, Any]
    run_folder: Path


def train(registry: Registry, domain_name: str, options: TrainOptions | None = None) -> GenerationResult:
    """Train a CAUSAL_LM LoRA for the generation domain `domain_name` and register it as its next version.

    Raises DataError or TrainingOptionsError before any model loads, on bad rows,
    an empty loss mask, completions all cut off by max_length, or classification-only options.
    """
    options = options or TrainOptions()
    prep = _prepare(registry, domain_name, options)
    device = pick_device(options.device)
    started = time.perf_counter()
    model = _build_model(prep, options)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    history = _fit(prep, options, model, device)
    pad_id = _pad_id(prep.tokenizer)
    result = evaluate.report(model, prep.eval_rows, pad_id, prep.lora.batch_size, device, prep.eval.source)
    log.info("%s: eval loss %.4f (base %.4f)", prep.domain.name, result.eval_loss, result.base_eval_loss)
    extra = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": 100.0 * trainable / total,
        "wall_time_s": time.perf_counter() - started,
        "train_time_s": history["train_time_s"],
        "device": device,
        "samples_per_s": history["samples"] / max(history["train_time_s"], 1e-9),
        "libraries": library_versions(),
        "epochs": history["epochs"],
        "resumed": options.resume,
    }
    version = _register(registry, prep, options, model, result, history, extra)
    checkpoints.discard(prep.run_folder)
    return GenerationResult(version, result, history, prep.args, extra)


def _prepare(registry: Registry, domain_name: str, options: TrainOptions) -> _Prepared:
    domain = registry.domain(domain_name)
    if not domain.generation:
        raise TrainingOptionsError(
            f"Domain {domain_name!r} is a {domain.task} domain; generation training needs a text-generation one: "
            f"adapters domains add NAME --task generation"
        )
    _refuse_classification_options(options)
    lora = options.recipe(domain.recipe)
    source = options.data or domain.dataset
    if not source:
        raise DataError(f"Domain {domain_name!r} has no default data: pass --data FILE (.jsonl or .csv).")
    full = gdata.load(source, options.prompt_column, options.completion_column)
    if options.eval_data:
        train_data = full
        eval_data = gdata.load(options.eval_data, options.prompt_column, options.completion_column)
    else:
        fraction = options.eval_fraction if options.eval_fraction is not None else DEFAULT_EVAL_FRACTION
        train_data, eval_data = gdata.split_eval(full, fraction, options.seed)
    base_name = options.base or domain.base_model
    revision = domain.base_revision if options.base is None else None
    identity = identify_base(base_name, revision, registry)
    tokenizer = load_causal_tokenizer(base_name, revision)
    train_encoded = gdata.encode_all(tokenizer, train_data)
    eval_encoded = gdata.encode_all(tokenizer, eval_data)
    limit = _position_limit(identity.folder)
    chosen = recipe.choose(
        len(train_encoded),
        lora.batch_size,
        [len(e.input_ids) for e in train_encoded],
        epochs=lora.epochs,
        lr=lora.lr,
        max_length=_explicit_max_length(options, domain),
        position_limit=limit,
    )
    if limit is not None and chosen.max_length > limit:
        raise TrainingOptionsError(
            f"max_length {chosen.max_length} exceeds what base {base_name!r} can read ({limit} positions); "
            f"pass --max-length {limit} or less."
        )
    train_rows = gdata.check_trainable(train_encoded, chosen.max_length, train_data.source)
    eval_rows = gdata.check_trainable(eval_encoded, chosen.max_length, eval_data.source)
    base = {**identity.record(), "provenance": identity.provenance(), "local_path": str(identity.folder)}
    note = read_record(identity.folder)
    if note is not None:  # the embedded GGUF, dequantized: say what these weights are
        base["provenance"] = {**base["provenance"], "base_source": "embedded", "base_note": note.get("revision_note")}
    args = _train_args(options, lora, chosen, base_name)
    key = checkpoints.run_key(
        {
            "domain": domain.name,
            "args": args,
            "train": train_data.fingerprint,
            "eval": eval_data.fingerprint,
            "base": identity.base_fingerprint,
        }
    )
    run_folder = checkpoints.run_dir(registry.home, domain.name, key)
    if options.resume and not any(run_folder.glob("checkpoint-*")):
        raise NoCheckpointError(
            f"No interrupted run of {domain.name!r} with these settings to resume ({run_folder} holds no "
            "checkpoint); run again without --resume, or with exactly the options of the interrupted run."
        )
    log.info("%s: %s", domain.name, chosen.describe())
    return _Prepared(
        domain, lora, chosen, train_data, eval_data, train_rows, eval_rows, tokenizer, base, args, run_folder
    )


def _refuse_classification_options(options: TrainOptions) -> None:
    """Options that only mean something for a classifier are refused, not silently ignored."""
    given = [
        flag
        for flag, on in (
            ("--full", options.full),
            ("--loop own", options.loop == "own"),
            ("--min-accuracy", options.min_accuracy is not None),
            ("--min-macro-f1", options.min_macro_f1 is not None),
        )
        if on
    ]
    if given:
        raise TrainingOptionsError(
            f"{', '.join(given)}: for classification domains only; generation trains LoRA with "
            "transformers' Trainer and is judged by eval loss. Drop them and run again."
        )
    unknown = [r for r in options.report_to if r not in REPORT_TO]
    if unknown:
        raise TrainingOptionsError(f"Unknown --report-to {', '.join(unknown)}: use any of {', '.join(REPORT_TO)}.")


def _explicit_max_length(options: TrainOptions, domain: Domain) -> int | None:
    """The run's --max-length, else a domain's own (any value but the generation default, a cap), else None."""
    if options.max_length is not None:
        return options.max_length
    if domain.recipe.max_length != GENERATION_RECIPE.max_length:
        return domain.recipe.max_length
    return None


def _position_limit(folder: Path) -> int | None:
    config = folder / "config.json"
    limit = json.loads(config.read_text()).get("max_position_embeddings") if config.is_file() else None
    return limit if isinstance(limit, int) and limit > 0 else None


def _train_args(
    options: TrainOptions, lora: LoraRecipe, chosen: recipe.GenerationRecipe, base_name: str
) -> dict[str, Any]:
    return {
        **lora.to_dict(),
        "epochs": chosen.epochs,
        "lr": chosen.lr,
        "max_length": chosen.max_length,
        "seed": options.seed,
        "eval_fraction": None if options.eval_data else (options.eval_fraction or DEFAULT_EVAL_FRACTION),
        "eval_data": options.eval_data,
        "optimizer": "adamw",
        "weight_decay": recipe.WEIGHT_DECAY,
        "warmup_ratio": chosen.warmup_ratio,
        "scheduler": "linear",
        "grad_clip": recipe.GRAD_CLIP,
        "recipe_rule": chosen.to_dict(),
        "base": base_name,
        "loss": "completion-only (prompt and padding tokens labelled -100)",
        "patience": DEFAULT_PATIENCE if options.patience is None else options.patience,
        "best_metric": BEST_METRIC,
        "loop": "trainer",
        "task_type": "CAUSAL_LM",
    }


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


def _build_model(prep: _Prepared, options: TrainOptions) -> torch.nn.Module:
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(options.seed)
    model = load_causal_lm(prep.args["base"], prep.base["base_revision"], dtype=torch.float32)
    model.name_or_path = model.config._name_or_path = prep.base["base_model"]  # what adapter_config records
    targets = recipe.lora_targets(model, prep.lora.target_modules)
    prep.args["target_modules"] = targets
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=prep.lora.r,
        lora_alpha=prep.lora.alpha,
        lora_dropout=prep.lora.dropout,
        target_modules=targets,
    )
    try:
        with warnings.catch_warnings():
            # transformers' own deprecation, raised from inside PEFT; nothing a user can act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    except ValueError as exc:  # target modules the base does not have
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise TrainingOptionsError(
            f"Cannot attach LoRA to {prep.args['base']!r} with target modules {targets} "
            f"({str(exc).split('.')[0]}); its linear layers are: {', '.join(linear)}. Pick from those with "
            "--target-modules."
        ) from None


def _dataset(rows: list[gdata.Encoded]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "input_ids": [r.input_ids for r in rows],
            "labels": [r.labels for r in rows],
            "length": [len(r.input_ids) for r in rows],  # LengthGroupedSampler reads it, never re-measures
        }
    )


def _entry(metrics: dict[str, Any], epoch: int, train_loss: float | None) -> dict[str, Any]:
    return {"epoch": epoch, "train_loss": train_loss, "eval_loss": metrics.get("eval_loss")}


def _lower_loss(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    inf = float("inf")
    return old is None or (new["eval_loss"] if new["eval_loss"] is not None else inf) < (
        old["eval_loss"] if old["eval_loss"] is not None else inf
    )


def _epoch_line(options: TrainOptions) -> Any:
    """The CLI's per-epoch line (options.on_epoch), from the recorder's (entry, epochs)."""
    if options.on_epoch is None:
        return None
    report = options.on_epoch

    def line(entry: dict[str, Any], epochs: int) -> None:
        nan = float("nan")
        train_loss = entry["train_loss"] if entry["train_loss"] is not None else nan
        eval_loss = entry["eval_loss"] if entry["eval_loss"] is not None else nan
        report(f"epoch {entry['epoch']}/{epochs}: train loss {train_loss:.4f}, eval loss {eval_loss:.4f}")

    return line


def _fit(prep: _Prepared, options: TrainOptions, model: Any, device: str) -> dict[str, Any]:
    """Run the Trainer; the model ends with the best epoch's weights (lowest eval loss)."""
    import torch
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainingArguments

    batch = prep.lora.batch_size
    epochs = prep.chosen.epochs
    history: dict[str, Any] = {
        "step_loss": [],
        "epochs": [],
        "train_time_s": 0.0,
        "samples": 0,
        "steps_per_epoch": prep.chosen.steps_per_epoch,
    }
    cuda = str(device).startswith("cuda")
    patience = DEFAULT_PATIENCE if options.patience is None else options.patience
    args = TrainingArguments(
        output_dir=str(prep.run_folder),
        num_train_epochs=epochs,
        learning_rate=prep.chosen.lr,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch,
        train_sampling_strategy="group_by_length",
        warmup_steps=prep.chosen.warmup_ratio,
        weight_decay=recipe.WEIGHT_DECAY,
        max_grad_norm=recipe.GRAD_CLIP,
        lr_scheduler_type="linear",
        seed=options.seed,
        data_seed=options.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=BEST_METRIC,
        greater_is_better=False,
        prediction_loss_only=True,
        logging_strategy="steps",
        logging_steps=1,
        report_to=list(options.report_to) or "none",
        disable_tqdm=not options.progress,
        use_cpu=not cuda,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        dataloader_num_workers=0,
    )
    pad_id = _pad_id(prep.tokenizer)
    callbacks = [recorder(history, _epoch_line(options), epochs, entry=_entry, better=_lower_loss)]
    if patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_dataset(prep.train_rows),
        eval_dataset=_dataset(prep.eval_rows),
        data_collator=lambda rows: gdata.collate(rows, pad_id),
        callbacks=callbacks,
    )
    # The Trainer prints each log dict to stdout when its bar is off; stdout is the CLI's (--json).
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=True if options.resume else None)
    history["samples"] = len(prep.train_rows) * len(history["epochs"])
    history["stopped_early"] = len(history["epochs"]) < epochs
    model.to(device)
    return history


def _register(
    registry: Registry,
    prep: _Prepared,
    options: TrainOptions,
    model: Any,
    result: evaluate.GenerationReport,
    history: dict[str, Any],
    extra: dict[str, Any],
) -> AdapterVersion:
    metrics = {
        **result.to_metrics(),
        **history_metrics(history, BEST_METRIC, "trainer"),
        "max_length": prep.chosen.max_length,
    }
    data_meta = {
        "source": prep.train.source,
        "format": prep.train.format,
        "fingerprint": prep.train.fingerprint,
        "train_size": len(prep.train_rows),
        "eval_size": len(prep.eval_rows),
        "eval_source": prep.eval.source,
        "eval_fingerprint": prep.eval.fingerprint,
        "prompt_column": options.prompt_column,
        "completion_column": options.completion_column,
    }
    with tempfile.TemporaryDirectory(prefix="loradock-train-gen-") as tmp:
        folder = Path(tmp)
        model.to("cpu")
        adapter = folder / "adapter"
        model.save_pretrained(str(adapter), safe_serialization=True, save_embedding_layers=False)
        info = VersionInfo(
            base_model=prep.base["base_model"],
            base_revision=prep.base["base_revision"],
            base_fingerprint=prep.base["base_fingerprint"],
            data=data_meta,
            metrics=metrics,
            train_args=prep.args,
            description=options.description,
            extra=extra,
            provenance={"source": "adapters train", "run": prep.run_folder.name, **prep.base["provenance"]},
        )
        version = registry.register(prep.domain.name, adapter, info)
        if version.reused:
            log.info("these weights are already %s; nothing new registered", version.ref)
        else:
            _add_artifacts(registry, prep, version, folder, metrics, history, data_meta, extra)
    if options.alias:
        registry.set_alias(version.domain, options.alias, version.number, force=options.force)
    return registry.resolve(version.ref)


def _add_artifacts(
    registry: Registry,
    prep: _Prepared,
    version: AdapterVersion,
    folder: Path,
    metrics: dict[str, Any],
    history: dict[str, Any],
    data_meta: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    """Loss plot, report and eval split; a version left without them is hidden again."""
    try:
        loss = plots.loss_curve(
            history["step_loss"],
            history["steps_per_epoch"],
            folder / "loss.png",
            [e["eval_loss"] for e in history["epochs"] if e["eval_loss"] is not None],
            title=f"{prep.domain.name}: training loss (completion tokens)",
        )
        registry.add_artifact(version.ref, "plot", "loss", {"loss.png": loss})
        report = folder / "metrics.json"
        report.write_text(
            json.dumps(
                {"metrics": metrics, "history": history, "train_args": prep.args, "data": data_meta, "extra": extra},
                indent=2,
                default=str,
            )
        )
        registry.add_artifact(version.ref, "report", "metrics", {"metrics.json": report})
        logs = {name[len("logs/") :]: path for name, path in log_files(prep.run_folder).items()}
        if logs:  # --report-to's event files, as for classification
            registry.add_artifact(version.ref, "logs", "train", logs)
        split = prep.eval.write_jsonl(folder / "eval.jsonl")
        registry.add_artifact(
            version.ref,
            "data",
            "eval",
            {"eval.jsonl": split},
            meta={"size": len(prep.eval), "fingerprint": prep.eval.fingerprint, "source": prep.eval.source},
        )
    except BaseException:
        registry.remove(version.ref, force=True)
        raise
