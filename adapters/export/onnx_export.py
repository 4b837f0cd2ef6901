"""Exporting a version to ONNX (fp32, or int8 by dynamic quantization), parity- and accuracy-gated.

The merged fp32 model goes through `torch.onnx.export`. The TorchScript-based
exporter (`dynamo=False`) is the default: on MiniLM it exports in ~2 s to one
file and the graph runs faster under onnxruntime than the dynamo exporter's
(BENCHMARKS.md has the side-by-side numbers). int8 is onnxruntime's
dynamic quantization (adapters/export/quantize.py, shared with the
multi-adapter graph).

Every export is compared with the unmerged fp32 adapter: max abs logit
difference on probe batches of several sizes and lengths (fp32), argmax
agreement (int8), and, when training recorded the version's evaluation data,
accuracy against the adapter's (`max_accuracy_drop`, in points). The accuracy
gate refuses only a loss that is over the limit *and* more than noise on the
eval split it has (registry/gate_stats.py: one rule for every gate); its
verdict, the numbers and the statistic that decided are stored with the export.

The quantizer is an extension point: `QUANTIZERS` maps a `--quantize` name
to a `Quantizer`, and `export_onnx(quantizer=...)` takes one directly (tests
pass a stand-in whose effect on predictions is known on every CPU).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loradock.adapters.environment import library_versions
from loradock.adapters.errors import AccuracyGateRefused, ExportError, ParityError
from loradock.adapters.export.merge import (
    DEFAULT_TOLERANCE,
    MergedModel,
    check_supported,
    copy_out_artifact,
    max_abs_diff,
    merge_in_memory,
    parity_failure,
    sizes,
    source_info,
    write_report,
)
from loradock.adapters.export.probes import EVAL_KIND, EVAL_NAME, Probes, eval_probes, training_texts
from loradock.adapters.export.quantize import Quantizer, quantize_int8
from loradock.adapters.label_config import save_label_config
from loradock.adapters.outdir import check_output, folder_files, staged_output
from loradock.adapters.predict import LABELS_FILE, ONNX_FILE, OnnxClassifier, torch_logits
from loradock.registry import AdapterVersion, Artifact, Registry, gate_stats

log = logging.getLogger(__name__)

ONNX_KIND = "onnx"
FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
EXPORTERS = ("legacy", "dynamo")
DEFAULT_EXPORTER = "legacy"
DEFAULT_OPSET = {"legacy": 17, "dynamo": 18}
OPSETS = range(14, 21)
DEFAULT_MAX_ACCURACY_DROP = 1.0
# (batch size, max tokens; None = the version's max_length): odd sizes catch
# axes that were baked in as constants at export time.
SHAPES: tuple[tuple[int, int | None], ...] = ((1, 8), (2, None), (5, 24), (16, 64))
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ExportResult:
    """Where an export was written, its registry artifact, and its parity report."""

    ref: str
    out: Path
    artifact: Artifact
    reused: bool
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return self.out / ONNX_FILE


def export_name(quantize: str | None, opset: int, exporter: str = DEFAULT_EXPORTER) -> str:
    """The options key an export is registered (and reused) under, e.g. 'int8-opset17'."""
    name = f"{quantize or 'fp32'}-opset{opset}"
    return name if exporter == DEFAULT_EXPORTER else f"{name}-{exporter}"


def check_options(fmt: str, quantize: str | None, opset: int | None, exporter: str) -> int:
    if fmt not in FORMATS:
        raise ExportError(f"Unsupported export format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(f"Unsupported quantization {quantize!r}; use one of: {', '.join(QUANTIZATIONS)}.")
    if exporter not in EXPORTERS:
        raise ExportError(f"Unknown exporter {exporter!r}; use one of: {', '.join(EXPORTERS)}.")
    opset = DEFAULT_OPSET[exporter] if opset is None else opset
    if opset not in OPSETS:
        raise ExportError(f"Unsupported ONNX opset {opset}; use {OPSETS.start}..{OPSETS.stop - 1}.")
    return opset


def torch_to_onnx(merged: MergedModel, path: Path, opset: int, exporter: str = DEFAULT_EXPORTER) -> list[str]:
    """Write the merged model as one ONNX file with dynamic batch and sequence axes; returns input names."""
    import torch

    # Two rows of different lengths: padding is traced, and no axis is 1 (which tracing could specialise).
    enc = merged.tokenizer(["a short text", "a somewhat longer text to trace"], padding=True, return_tensors="pt")
    names = [n for n in _INPUTS if n in enc]
    kwargs = {n: enc[n] for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings say nothing actionable here
        if exporter == "dynamo":
            batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
            torch.onnx.export(
                merged.model,
                (),
                str(path),
                kwargs=kwargs,
                input_names=names,
                output_names=["logits"],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes={n: {0: batch, 1: seq} for n in names},
                verbose=False,
            )
        else:
            torch.onnx.export(
                merged.model,
                (),
                str(path),
                kwargs=kwargs,
                input_names=names,
                output_names=["logits"],
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
                dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
            )
    return names


# Quantizer and quantize_int8 live in quantize.py; imported here as the table's entries.
QUANTIZERS: dict[str, Quantizer] = {"int8": quantize_int8}


def long_text(texts: list[str], start: int, count: int) -> str:
    """`count` probe texts joined: rows of mixed lengths, some past max_length (truncation)."""
    return " ".join(texts[(start + j) % len(texts)] for j in range(count))


def shape_parity(merged: MergedModel, onnx: OnnxClassifier) -> list[dict[str, Any]]:
    """Adapter vs ONNX logits on probe batches of several sizes and lengths."""
    results = []
    for batch, length in SHAPES:
        max_length = length or merged.max_length
        texts = [long_text(merged.probes.texts, i, 1 + (5 * i + batch) % 16) for i in range(batch)]
        expected = torch_logits(merged.adapter, merged.tokenizer, texts, max_length, batch_size=batch)
        got = onnx.logits(texts, max_length, batch_size=batch)
        seq = len(onnx.tokenizer(texts, padding=True, truncation=True, max_length=max_length)["input_ids"][0])
        results.append(
            {"batch": batch, "max_length": max_length, "seq_len": seq, "max_abs_diff": max_abs_diff(expected, got)}
        )
    return results


def label_ids(version: AdapterVersion, data: Probes) -> np.ndarray:
    index = {label: i for i, label in enumerate(version.labels)}
    unknown = sorted({label for label in data.labels or [] if label not in index})
    if unknown:
        raise ExportError(
            f"Eval data of {version.ref} ({data.source}) has labels {unknown} that are not the version's "
            f"{list(version.labels)}; re-train or fix the data."
        )
    return np.array([index[label] for label in data.labels or []])


def accuracy_gate(
    merged: MergedModel,
    onnx: OnnxClassifier,
    data: Probes | None,
    max_drop: float,
    what: str,
    extra_texts: list[str] | None = None,
) -> dict[str, Any]:
    """The export against the fp32 adapter on eval data (registry/gate_stats.py's rule); raises when refused.

    Agreement is also measured on `extra_texts` (the training texts, where
    known): it needs no labels and can show, on more texts, that the export
    changes too few predictions to lose `max_drop` points.
    """
    if data is None or not data.labelled:
        log.warning("%s has no evaluation data recorded; the accuracy gate is skipped", merged.version.ref)
        return {"applied": False, "reason": "the version has no evaluation data (artifact data/eval)"}
    gold = label_ids(merged.version, data)
    seen = set(data.texts)
    texts = [*data.texts, *dict.fromkeys(t for t in extra_texts or [] if t not in seen)]
    adapter = torch_logits(merged.adapter, merged.tokenizer, texts, merged.max_length).argmax(-1)
    exported = onnx.logits(texts, merged.max_length).argmax(-1)
    n = len(data.texts)
    paired = gate_stats.Paired.from_predictions(gold.tolist(), adapter[:n].tolist(), exported[:n].tolist())
    agreement = gate_stats.Agreement.from_predictions(adapter.tolist(), exported.tolist())
    verdict = gate_stats.decide(paired, max_drop, agreement, names=("the fp32 adapter", what))
    gate = {
        "applied": True,
        "eval_source": data.source,
        **verdict,
        "accuracy_adapter": 100 * paired.reference_right / n,
        "accuracy_export": 100 * paired.candidate_right / n,
        "agreement_with_adapter": float((adapter[:n] == exported[:n]).mean()),
    }
    if not gate["passed"]:
        raise AccuracyGateRefused(
            f"The {what} export of {merged.version.ref} was refused: {gate['reason']}. Nothing was written. "
            "Export fp32 instead, or pass a larger --max-accuracy-drop.",
            gate,
        )
    log.info("%s export of %s: %s", what, merged.version.ref, gate["reason"])
    return gate


def write_side_files(merged: MergedModel, folder: Path) -> None:
    """Tokenizer, config and label map beside model.onnx: the folder runs on its own."""
    merged.tokenizer.save_pretrained(str(folder))
    save_label_config(merged.model, folder)  # names BertForSequenceClassification, not the base's BertModel
    labels = list(merged.version.labels)
    (folder / LABELS_FILE).write_text(
        json.dumps(
            {
                "id2label": {str(i): label for i, label in enumerate(labels)},
                "label2id": {label: i for i, label in enumerate(labels)},
            },
            indent=2,
        )
        + "\n"
    )


def check_recorded(artifact: Artifact, tolerance: float, max_drop: float) -> None:
    """A reused export must satisfy the checks asked for now, not only the ones it passed then."""
    meta = artifact.meta
    diff = float(meta.get("max_abs_diff", float("inf")))
    if meta.get("quantize") is None and not diff <= tolerance:
        raise ParityError(
            f"The registered export {artifact.name} differs from the adapter by max abs logit difference "
            f"{diff:.3g}, over tolerance {tolerance:g}; nothing was written."
        )
    gate = meta.get("gate", {})
    if not gate.get("applied"):
        return
    recorded, now = gate_stats.recheck(gate), gate_stats.recheck(gate, max_drop)
    if recorded is None or now is None:  # recorded before verdicts were stored: the limit alone
        if gate["accuracy_drop"] > max_drop:
            raise ParityError(
                f"The registered export {artifact.name} scores {gate['accuracy_drop']:.2f} points below the fp32 "
                f"adapter, over the allowed drop of {max_drop:g}; nothing was written."
            )
        return
    if recorded["verdict"] != gate.get("verdict"):
        raise ParityError(
            f"The registered export {artifact.name} records the verdict {gate.get('verdict')!r}, but its own "
            f"numbers give {recorded['verdict']!r} (edited, or written by other rules); nothing was written. Export with "
            "another --opset for a fresh, checked export."
        )
    if not now["passed"]:
        raise ParityError(
            f"The registered export {artifact.name} fails the accuracy gate at --max-accuracy-drop "
            f"{max_drop:g}: {now['reason']}; nothing was written."
        )


def export_onnx(
    registry: Registry,
    ref: str,
    out: Path | str,
    quantize: str | None = None,
    opset: int | None = None,
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    overwrite: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    fmt: str = "onnx",
    exporter: str = DEFAULT_EXPORTER,
    quantizer: Quantizer | None = None,
) -> ExportResult:
    """Export DOMAIN@REF to ONNX (fp32 or int8), check it, write `out`, and register it as an artifact.

    An export already registered for this version and options is copied out
    instead of redone, provided its recorded checks meet the ones asked for.
    `quantizer` replaces `QUANTIZERS[quantize]` (a stand-in, or another method).
    """
    opset = check_options(fmt, quantize, opset, exporter)
    version = registry.resolve(ref)
    check_supported(version)
    out = check_output(Path(out), overwrite)
    name = export_name(quantize, opset, exporter)
    existing = registry.find_artifact(version.ref, ONNX_KIND, name)
    if (
        existing is not None
        and not existing.meta.get("gate", {}).get("applied")
        and registry.find_artifact(version.ref, EVAL_KIND, EVAL_NAME) is not None
    ):
        existing = None  # eval data arrived since: the accuracy gate must run this time
    if existing is not None:
        check_recorded(existing, tolerance, max_accuracy_drop)
        copy_out_artifact(registry, existing, out, overwrite)
        log.info("reused onnx artifact %s of %s", name, version.ref)
        return ExportResult(version.ref, out, existing, True, existing.meta)

    with staged_output(out, overwrite) as tmp, tempfile.TemporaryDirectory() as work:
        merged = merge_in_memory(registry, version.ref, tolerance)
        write_side_files(merged, tmp)
        fp32, report = _fp32_onnx(registry, merged, tmp, Path(work), opset, exporter, tolerance, quantize)
        final = tmp / ONNX_FILE
        if quantize is not None:
            report["quantization"] = (quantizer or QUANTIZERS[quantize])(fp32, final)
        else:
            shutil.copyfile(fp32, final)
        exported = OnnxClassifier(tmp)
        logits = exported.logits(merged.probes.texts, merged.max_length)
        report["max_abs_diff"] = max_abs_diff(merged.adapter_logits, logits)  # for int8: informational
        report["argmax_agreement"] = float((logits.argmax(-1) == merged.adapter_logits.argmax(-1)).mean())
        report["gate"] = accuracy_gate(
            merged,
            exported,
            eval_probes(registry, version),
            max_accuracy_drop,
            quantize or "fp32 ONNX",
            training_texts(version),
        )
        report["name"] = name
        write_report(tmp, report)
        report["sizes"] = sizes(tmp)
        artifact = registry.add_artifact(version.ref, ONNX_KIND, name, folder_files(tmp), meta=report)
    log.info("exported %s as %s: max abs diff %.3g", version.ref, name, report["max_abs_diff"])
    return ExportResult(version.ref, out, artifact, False, report)


def _fp32_onnx(
    registry: Registry,
    merged: MergedModel,
    folder: Path,
    work: Path,
    opset: int,
    exporter: str,
    tolerance: float,
    quantize: str | None,
) -> tuple[Path, dict[str, Any]]:
    """A parity-checked fp32 ONNX file and the report so far.

    int8 starts from the registered fp32 export of the same options when there
    is one (it passed the same checks), instead of exporting again.
    """
    report: dict[str, Any] = {
        "kind": ONNX_KIND,
        "format": "onnx",
        "quantize": quantize,
        "opset": opset,
        "exporter": f"torch.onnx.export(dynamo={exporter == 'dynamo'})",
        "source": source_info(merged.version),
        "max_length": merged.max_length,
        "probes": {"source": merged.probes.source, "count": len(merged.probes.texts)},
        "tolerance": tolerance,
        "merge_max_abs_diff": merged.in_memory_diff,
        "libraries": library_versions(),
    }
    base = registry.find_artifact(merged.version.ref, ONNX_KIND, export_name(None, opset, exporter))
    if quantize and base is not None and base.meta.get("fp32_max_abs_diff", float("inf")) <= tolerance:
        report.update({k: base.meta[k] for k in ("fp32_max_abs_diff", "shapes", "export_s") if k in base.meta})
        report["fp32_from"] = f"{ONNX_KIND}/{base.name}"
        return registry.artifact_path(base) / ONNX_FILE, report
    fp32 = work / "fp32.onnx"
    started = time.perf_counter()
    torch_to_onnx(merged, fp32, opset, exporter)
    report["export_s"] = round(time.perf_counter() - started, 2)
    onnx = OnnxClassifier(folder, model=fp32)
    shapes = shape_parity(merged, onnx)
    probe_diff = max_abs_diff(merged.adapter_logits, onnx.logits(merged.probes.texts, merged.max_length))
    report["fp32_max_abs_diff"] = max([probe_diff, *(s["max_abs_diff"] for s in shapes)])
    report["shapes"] = shapes
    if not report["fp32_max_abs_diff"] <= tolerance:
        raise parity_failure(
            "The fp32 ONNX export", merged.version.ref, report["fp32_max_abs_diff"], tolerance, merged.probes
        )
    return fp32, report
