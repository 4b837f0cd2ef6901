"""Merging a LoRA version into its base: one plain transformers model, parity-checked.

The merge runs in fp32 with PEFT's safe merge (on a copy, NaN-checked), keeps
the classifier head PEFT saved beside the adapter, and is checked by loading
the written folder back with plain transformers and comparing its logits with
the unmerged adapter's on a probe set: a head that was not saved, or weights
that drifted, show up as a logit difference over the tolerance.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loradock.adapters.environment import library_versions
from loradock.adapters.errors import ExportError, ParityError
from loradock.adapters.export.probes import Probes, probe_set
from loradock.adapters.outdir import check_output, copy_folder, folder_files, staged_output
from loradock.adapters.predict import REPORT_FILE, torch_logits, version_max_length
from loradock.registry import AdapterVersion, Artifact, Registry

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

MERGED_KIND = "merged"
MERGED_NAME = "fp32"
DEFAULT_TOLERANCE = 1e-4
SUPPORTED_TASKS = {"text-classification": "SEQ_CLS"}


@dataclass(frozen=True)
class MergeResult:
    """Where a merged model was written, its registry artifact, and its parity report."""

    ref: str
    out: Path
    artifact: Artifact
    reused: bool
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class MergedModel:
    """A version merged in memory, with the unmerged adapter kept for comparisons."""

    version: AdapterVersion
    adapter: PeftModel
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    probes: Probes
    max_length: int
    adapter_logits: np.ndarray
    in_memory_diff: float


def check_supported(version: AdapterVersion) -> None:
    """Refuse versions merge/export cannot handle: other tasks, other PEFT task types, non-adapters."""
    expected = SUPPORTED_TASKS.get(version.task)
    task_type = version.peft_config.get("task_type")
    if expected is None or task_type != expected or version.kind != "adapter":
        raise ExportError(
            f"{version.ref} is a {version.kind} for task {version.task!r} (PEFT task_type {task_type!r}); "
            f"merge and export support LoRA adapters for {', '.join(f'{t} ({p})' for t, p in SUPPORTED_TASKS.items())}."
        )


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def parity_failure(what: str, ref: str, diff: float, tolerance: float, probes: Probes) -> ParityError:
    return ParityError(
        f"{what} of {ref} differs from the adapter by max abs logit difference {diff:.3g} "
        f"over tolerance {tolerance:g} on {len(probes.texts)} probe texts ({probes.source}); nothing was written. "
        "Check the base model and the adapter files, or pass a larger --tolerance if that difference is acceptable."
    )


def merge_in_memory(
    registry: Registry, ref: str, tolerance: float = DEFAULT_TOLERANCE, probes: Probes | None = None
) -> MergedModel:
    """Load DOMAIN@REF in fp32, merge a copy (safe merge), and compare logits on the probes."""
    import torch

    from loradock.adapters.loading import load_version

    version = registry.resolve(ref)
    check_supported(version)
    loaded = load_version(registry, version.ref, "cpu", dtype=torch.float32)
    probes = probes or probe_set(registry, version)
    max_length = version_max_length(registry, version)
    adapter_logits = torch_logits(loaded.model, loaded.tokenizer, probes.texts, max_length)
    # merge_and_unload rewrites the modules in place: keep the adapter for later comparisons.
    merged = copy.deepcopy(loaded.model).merge_and_unload(safe_merge=True).eval()
    diff = max_abs_diff(adapter_logits, torch_logits(merged, loaded.tokenizer, probes.texts, max_length))
    log.info("merged %s in memory: max abs logit diff %.3g on %d probes", version.ref, diff, len(probes.texts))
    if not diff <= tolerance:
        raise parity_failure("The merged model", version.ref, diff, tolerance, probes)
    return MergedModel(version, loaded.model, merged, loaded.tokenizer, probes, max_length, adapter_logits, diff)


def save_merged(merged: MergedModel, folder: Path) -> None:
    """A standard transformers folder: safetensors weights, config with labels, tokenizer."""
    merged.model.save_pretrained(str(folder), safe_serialization=True)
    merged.tokenizer.save_pretrained(str(folder))


def reload_and_check(merged: MergedModel, folder: Path, tolerance: float) -> float:
    """Load `folder` with plain transformers and compare with the adapter; returns the max abs diff."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a missing head is reported below as a logit difference
    try:
        plain = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    finally:
        hf_logging.set_verbosity(verbosity)
    labels = [plain.config.id2label[i] for i in range(plain.config.num_labels)]
    if labels != list(merged.version.labels):
        raise ParityError(
            f"The merged model of {merged.version.ref} has labels {labels}, not the version's "
            f"{list(merged.version.labels)}; nothing was written."
        )
    diff = max_abs_diff(merged.adapter_logits, torch_logits(plain, tokenizer, merged.probes.texts, merged.max_length))
    if not diff <= tolerance:
        raise parity_failure(
            "The merged model loaded back from disk", merged.version.ref, diff, tolerance, merged.probes
        )
    return diff


def source_info(version: AdapterVersion) -> dict[str, Any]:
    return {
        "ref": version.ref,
        "sha256": version.sha256,
        "base_model": version.base_model,
        "base_revision": version.base_revision,
        "base_fingerprint": version.base_fingerprint,
        "labels": list(version.labels),
    }


def write_report(folder: Path, report: dict[str, Any]) -> None:
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def sizes(folder: Path) -> dict[str, int]:
    files = {name: path.stat().st_size for name, path in folder_files(folder).items()}
    return {**files, "total": sum(files.values())}


def copy_out_artifact(registry: Registry, artifact: Artifact, out: Path, overwrite: bool) -> None:
    """Materialize a registered artifact into `out`, atomically like a fresh build."""
    with staged_output(out, overwrite) as tmp:
        copy_folder(registry.artifact_path(artifact), tmp)


def merge_version(
    registry: Registry, ref: str, out: Path | str, tolerance: float = DEFAULT_TOLERANCE, overwrite: bool = False
) -> MergeResult:
    """Merge DOMAIN@REF into its base, check parity, write `out`, and register it as an artifact.

    A merge already registered for this version is copied out instead of redone,
    provided its recorded difference is within `tolerance`.
    """
    version = registry.resolve(ref)
    check_supported(version)
    out = check_output(Path(out), overwrite)
    existing = registry.find_artifact(version.ref, MERGED_KIND, MERGED_NAME)
    if existing is not None:
        recorded = float(existing.meta.get("max_abs_diff", float("inf")))
        if not recorded <= tolerance:
            raise ParityError(
                f"The registered merge of {version.ref} differs from the adapter by max abs logit difference "
                f"{recorded:.3g}, over tolerance {tolerance:g}; nothing was written."
            )
        copy_out_artifact(registry, existing, out, overwrite)
        log.info("reused merged artifact of %s", version.ref)
        return MergeResult(version.ref, out, existing, True, existing.meta)

    with staged_output(out, overwrite) as tmp:
        merged = merge_in_memory(registry, version.ref, tolerance)
        save_merged(merged, tmp)
        diff = reload_and_check(merged, tmp, tolerance)
        report = {
            "kind": MERGED_KIND,
            "name": MERGED_NAME,
            "dtype": "float32",
            "safe_merge": True,
            "source": source_info(version),
            "max_length": merged.max_length,
            "probes": {"source": merged.probes.source, "count": len(merged.probes.texts)},
            "tolerance": tolerance,
            "max_abs_diff": diff,
            "max_abs_diff_in_memory": merged.in_memory_diff,
            "libraries": library_versions(),
        }
        write_report(tmp, report)
        report["sizes"] = sizes(tmp)
        artifact = registry.add_artifact(version.ref, MERGED_KIND, MERGED_NAME, folder_files(tmp), meta=report)
    return MergeResult(version.ref, out, artifact, False, report)
