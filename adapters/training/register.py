"""A finished run into the registry: the domain's next version (LoRA) or a full-model artifact (--full).

The version gets the run's metrics, gate verdict, plots, report, Trainer
logs and eval split; a version whose artifacts fail to store is removed
again, and a domain made for the run goes with it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loradock.adapters import data as datamod
from loradock.adapters.environment import library_versions
from loradock.adapters.label_config import save_label_config
from loradock.adapters.training import plots
from loradock.adapters.training.evaluate import EvalReport
from loradock.adapters.training.hf_loop import logs_folder
from loradock.adapters.training.options import BEST_METRIC, TrainOptions
from loradock.adapters.training.prepare import Prepared
from loradock.registry import AdapterVersion, Artifact, Registry, VersionInfo
from loradock.registry.gates import check as check_gate

log = logging.getLogger(__name__)

FULL_MODEL_KIND = "full-model"


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


def register(
    registry: Registry,
    prep: Prepared,
    options: TrainOptions,
    model: Any,
    report: EvalReport,
    history: dict[str, Any],
    *,
    counts: dict[str, Any],
    wall_time_s: float,
    device: str,
) -> TrainResult:
    """Judge the trained `model` by its gate and store it with its outputs; `counts` are its parameter counts."""
    metrics = _metrics(report, history, prep.args)
    gate = _judge(prep, options, metrics)
    extra = {
        **counts,
        "wall_time_s": wall_time_s,
        "train_time_s": history["train_time_s"],
        "device": device,
        "samples_per_s": metrics["samples_per_s"],
        "libraries": library_versions(),
        "epochs": history["epochs"],
        "resumed": options.resume,
    }
    with tempfile.TemporaryDirectory(prefix="loradock-train-") as tmp:
        folder = Path(tmp)
        model.to("cpu")
        outputs = _write_outputs(folder, prep, report, history, {**extra, "gate": gate}, metrics)
        outputs.update(log_files(prep.run_folder))
        if prep.new_domain:
            registry.add_domain(prep.domain)
        try:
            if options.full:
                artifact = _register_full(registry, prep, model, outputs, folder, metrics, {**extra, "gate": gate})
                return TrainResult(None, report, artifact, history, prep.args, extra, gate, prep.new_domain)
            version = _register_adapter(registry, prep, options, model, outputs, folder, metrics, extra, gate)
            return TrainResult(version, report, None, history, prep.args, extra, gate, prep.new_domain)
        except BaseException:
            if prep.new_domain:  # a domain made for this run goes with it
                registry.remove_domain(prep.domain.name, force=True)
            raise


def _judge(prep: Prepared, options: TrainOptions, metrics: dict[str, Any]) -> dict[str, Any]:
    """The gate verdict on `metrics`: the run's thresholds over the domain's."""
    gate = check_gate(metrics, prep.eval.counts(), prep.domain.gate.merged(options.gate()))
    if gate["passed"]:
        log.info("%s passed its quality gate", prep.domain.name)
    else:
        log.warning("%s failed its quality gate: %s", prep.domain.name, "; ".join(gate["reasons"]))
    return gate


def log_files(run_folder: Path) -> dict[str, Path]:
    """The report_to integrations' event files, kept with the version as logs/<path>."""
    logs = logs_folder(run_folder)
    if logs is None:
        return {}
    return {f"logs/{p.relative_to(logs).as_posix()}": p for p in sorted(logs.rglob("*")) if p.is_file()}


def _metrics(report: EvalReport, history: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The best epoch's eval metrics, plus how the run went (loop, length, time, speed, epochs)."""
    p95 = args["recipe_rule"].get("length_p95")
    return {
        **report.to_metrics(),
        **history_metrics(history, BEST_METRIC, args["loop"]),
        "max_length": args["max_length"],
        **({"length_p95": p95} if p95 is not None else {}),
    }


def history_metrics(history: dict[str, Any], best_metric: str, loop: str) -> dict[str, Any]:
    """How a run went, from its history (any task): the best epoch's train loss, epochs, time, speed."""
    best = history.get("best") or (history["epochs"][-1] if history["epochs"] else {})
    return {
        "train_loss": best.get("train_loss"),
        "best_epoch": history.get("best_epoch"),
        "best_metric": best_metric,
        "epochs_run": len(history["epochs"]),
        "stopped_early": bool(history.get("stopped_early")),
        "train_time_s": history["train_time_s"],
        "samples_per_s": history["samples"] / max(history["train_time_s"], 1e-9),
        "loop": loop,
    }


def _write_outputs(
    folder: Path,
    prep: Prepared,
    report: EvalReport,
    history: dict[str, Any],
    extra: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Path]:
    """Plots, metrics.json and eval.jsonl in `folder`; returns {file name: path}."""
    epochs = history["epochs"]
    name = prep.domain.name
    files = {
        "loss.png": plots.loss_curve(
            history["step_loss"],
            history["steps_per_epoch"],
            folder / "loss.png",
            [e["eval_loss"] for e in epochs],
            title=f"{name}: training loss",
        ),
        "accuracy.png": plots.accuracy_curve(
            [e["accuracy"] for e in epochs],
            folder / "accuracy.png",
            [e["macro_f1"] for e in epochs],
            title=f"{name}: validation accuracy per epoch",
            best_epoch=history.get("best_epoch"),
            baseline=(extra.get("gate") or {}).get("baseline", {}).get("accuracy"),
        ),
        "confusion.png": plots.confusion_heatmap(
            report.confusion_matrix,
            report.labels,
            folder / "confusion.png",
            title=f"{name}: confusion matrix ({report.size} eval examples)",
        ),
    }
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "metrics": metrics,
                "history": history,
                "train_args": prep.args,
                "data": prep.data_meta,
                "extra": extra,
            },
            indent=2,
        )
    )
    files["metrics.json"] = folder / "metrics.json"
    files["eval.jsonl"] = datamod.write_jsonl(prep.eval, folder / "eval.jsonl")
    return files


def _register_adapter(
    registry: Registry,
    prep: Prepared,
    options: TrainOptions,
    model: Any,
    outputs: dict[str, Path],
    folder: Path,
    metrics: dict[str, Any],
    extra: dict[str, Any],
    gate: dict[str, Any],
) -> AdapterVersion:
    adapter = folder / "adapter"
    model.save_pretrained(str(adapter), safe_serialization=True, save_embedding_layers=False)
    save_label_config(model, adapter)  # label names for plain PEFT/transformers loading (README)
    info = VersionInfo(
        base_model=prep.base["base_model"],
        base_revision=prep.base["base_revision"],
        base_fingerprint=prep.base["base_fingerprint"],
        data=prep.data_meta,
        metrics=metrics,
        train_args=prep.args,
        description=options.description,
        extra=extra,
        provenance={"source": "adapters train", "run": prep.run_folder.name, **prep.base["provenance"]},
        gate=gate,
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
        log.warning(
            "%s failed its gate; %s@%s stays where it was (pass force to move it anyway)",
            version.ref,
            version.domain,
            options.alias,
        )
    return registry.resolve(version.ref)


def _add_artifacts(registry: Registry, prep: Prepared, version: AdapterVersion, outputs: dict[str, Path]) -> None:
    """Plots, report and eval split; a version left without them is half-done, so it is hidden again."""
    try:
        for plot in ("loss", "accuracy", "confusion"):
            registry.add_artifact(version.ref, "plot", plot, {f"{plot}.png": outputs[f"{plot}.png"]})
        registry.add_artifact(version.ref, "report", "metrics", {"metrics.json": outputs["metrics.json"]})
        logs = {name[len("logs/") :]: path for name, path in outputs.items() if name.startswith("logs/")}
        if logs:
            registry.add_artifact(version.ref, "logs", "train", logs)
        registry.add_artifact(
            version.ref,
            "data",
            "eval",
            {"eval.jsonl": outputs["eval.jsonl"]},
            meta={"size": len(prep.eval), "fingerprint": prep.eval.fingerprint, "source": prep.eval.source},
        )
    except BaseException:
        # A version without its artifacts is half-done: hide it again.
        registry.remove(version.ref, force=True)
        raise


def _register_full(
    registry: Registry,
    prep: Prepared,
    model: Any,
    outputs: dict[str, Path],
    folder: Path,
    metrics: dict[str, Any],
    extra: dict[str, Any],
) -> Artifact:
    out = folder / "model"
    model.save_pretrained(str(out), safe_serialization=True)
    prep.tokenizer.save_pretrained(str(out))
    files = {p.name: p for p in out.iterdir() if p.is_file()}
    files.update(outputs)
    existing = registry.domain_artifacts(prep.domain.name, FULL_MODEL_KIND)
    name = f"full-{len(existing) + 1}"
    return registry.add_domain_artifact(
        prep.domain.name,
        FULL_MODEL_KIND,
        name,
        files,
        meta={
            "metrics": metrics,
            "train_args": prep.args,
            "data": prep.data_meta,
            "extra": extra,
            "base_model": prep.base["base_model"],
            "base_fingerprint": prep.base["base_fingerprint"],
        },
    )
