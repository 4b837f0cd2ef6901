"""adapters merge: a plain transformers folder that matches the adapter, registered, reused, and checked."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from loradock.adapters.errors import ParityError
from loradock.cli.main import cli
from loradock.registry import PRESETS
from tests.export_support import (  # noqa: F401  (exported is a fixture)
    adapter_logits,
    exported,
    leftovers,
    register_version,
    state_dict_keys,
    varied_texts,
)

pytestmark = pytest.mark.slow


def test_merged_folder_loads_with_plain_transformers_and_matches_adapter(exported):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = exported.merged.out
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert [model.config.id2label[i] for i in range(model.config.num_labels)] == ["negative", "positive"]
    assert not [k for k in state_dict_keys(folder) if "lora_" in k or "modules_to_save" in k]

    texts = varied_texts(7)
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        merged = model(**enc).logits.numpy()
    expected = adapter_logits(exported.registry, exported.version.ref, texts)
    assert np.abs(merged - expected).max() <= 1e-4
    assert np.abs(expected).max() > 1e-2  # the adapter (and its head) really change the logits


def test_merge_is_registered_with_its_parity_report_and_shown(exported, monkeypatch):
    artifact = exported.registry.find_artifact(exported.version.ref, "merged", "fp32")
    assert artifact is not None and "model.safetensors" in artifact.files and "config.json" in artifact.files
    meta = artifact.meta
    assert meta["tolerance"] == 1e-4 and 0 <= meta["max_abs_diff"] <= 1e-4
    assert meta["source"]["sha256"] == exported.version.sha256
    assert meta["probes"]["source"].startswith("artifact data/eval") and meta["probes"]["count"] > 0
    assert {"torch", "transformers", "peft"} <= set(meta["libraries"])
    assert meta["sizes"]["model.safetensors"] > 10_000_000

    monkeypatch.setenv("ADAPTERS_HOME", str(exported.home))
    shown = CliRunner().invoke(cli, ["show", exported.version.ref], catch_exceptions=False)
    assert shown.exit_code == 0 and "merged/fp32" in shown.output


def test_same_merge_again_is_copied_from_the_registry(exported, tmp_path, monkeypatch):
    from loradock.adapters.export import merge

    def must_not_merge(*args, **kwargs):
        raise AssertionError("merged again instead of reusing the registered artifact")

    monkeypatch.setattr(merge, "merge_in_memory", must_not_merge)
    result = merge.merge_version(exported.registry, exported.version.ref, tmp_path / "again")
    assert result.reused
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        exported.merged.out / "model.safetensors"
    ).read_bytes()


def test_overwrite_replaces_a_previous_output(exported, tmp_path):
    from loradock.adapters.export.merge import merge_version

    out = tmp_path / "existing"
    merge_version(exported.registry, exported.version.ref, out)
    (out / "model.safetensors").write_bytes(b"stale")
    merge_version(exported.registry, exported.version.ref, out, overwrite=True)
    assert (out / "model.safetensors").read_bytes() == (exported.merged.out / "model.safetensors").read_bytes()
    assert leftovers(tmp_path) == []


def test_impossibly_tight_tolerance_fails_naming_the_measured_difference(exported, tmp_path, make_peft_folder):
    from loradock.adapters.export.merge import merge_version

    version = register_version(exported.registry, make_peft_folder(labels=PRESETS["sentiment"].labels, seed=6))
    out = tmp_path / "tight"
    with pytest.raises(ParityError) as err:
        merge_version(exported.registry, version.ref, out, tolerance=1e-12)
    measured = re.search(r"difference (\S+) over tolerance 1e-12", str(err.value))
    assert measured and float(measured.group(1)) > 1e-12
    assert not out.exists() and leftovers(tmp_path) == []
    assert exported.registry.find_artifact(version.ref, "merged", "fp32") is None

    # A registered merge is not handed out under a tolerance it did not meet either.
    with pytest.raises(ParityError, match=r"difference \S+, over tolerance 1e-12"):
        merge_version(exported.registry, exported.version.ref, tmp_path / "reused", tolerance=1e-12)
    assert not (tmp_path / "reused").exists()


def test_a_dropped_classifier_head_is_caught(exported, tmp_path, make_peft_folder, monkeypatch):
    """Saving without the head (the classic merge bug) shows up as a logit difference."""
    from safetensors.numpy import load_file, save_file

    from loradock.adapters.export import merge

    real_save = merge.save_merged

    def save_without_head(merged, folder: Path) -> None:
        real_save(merged, folder)
        weights = load_file(str(folder / "model.safetensors"))
        save_file(
            {k: v for k, v in weights.items() if not k.startswith("classifier.")},
            str(folder / "model.safetensors"),
            metadata={"format": "pt"},
        )

    monkeypatch.setattr(merge, "save_merged", save_without_head)
    version = register_version(exported.registry, make_peft_folder(labels=PRESETS["sentiment"].labels, seed=7))
    out = tmp_path / "headless"
    with pytest.raises(ParityError, match=r"loaded back from disk .* difference \d") as err:
        merge.merge_version(exported.registry, version.ref, out)
    assert "over tolerance 0.0001" in str(err.value)
    assert not out.exists() and leftovers(tmp_path) == []
    assert exported.registry.find_artifact(version.ref, "merged", "fp32") is None
