"""The onnx-multi edge bundle: written by `adapters export D1,D2 --format onnx-multi`, run by the README
snippet exactly as written, in a fresh process that imports neither torch nor loradock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from loradock.registry import PRESETS, Registry, VersionInfo
from tests.onnx_multi_support import peft_alone, peft_folder, tiny_base
from tests.readme_snippets import python_block

ROOT = Path(__file__).resolve().parents[2]

# The README's snippet, run exactly as written.
SNIPPET = python_block("Tokenizer", "bundle.json")
NO_PROJECT = (
    "\nimport sys\nleaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'loradock'))\n"
    "assert not leaked, leaked\n"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_base(tmp_path_factory.mktemp("tiny-bert")))


def register(registry: Registry, base: str, work: Path) -> dict[str, Path]:
    from loradock.adapters.base import base_info

    info = VersionInfo(base_model=base, base_fingerprint=base_info(base)["base_fingerprint"])
    folders = {}
    for seed, (domain, r) in enumerate((("sentiment", 2), ("medical", 8), ("education", 4))):
        folders[domain] = peft_folder(base, work / domain, PRESETS[domain].labels, r, seed=seed)
        registry.register(domain, folders[domain], info, aliases=["production"])
    return folders


def test_readme_snippet_runs_the_bundle_without_torch_or_loradock(
    registry: Registry, tiny: str, tmp_path: Path
) -> None:
    from loradock.cli.main import cli

    folders = register(registry, tiny, tmp_path)
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "sentiment@production,medical@1,education",
            "--format",
            "onnx-multi",
            "--out",
            str(tmp_path / "edge-bundle"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "one onnx-multi bundle" in result.output
    meta = json.loads((tmp_path / "edge-bundle" / "bundle.json").read_text())
    assert meta["domains"] == ["sentiment", "medical", "education"]
    proc = subprocess.run(
        [sys.executable, "-c", SNIPPET + NO_PROJECT], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    texts = ["I loved every minute of it.", "Crushing chest pain since this morning."]
    for line, domain, text in zip(lines, ["sentiment", "medical"], texts):
        name, label, logits = line.split(" ", 2)
        want = peft_alone(tiny, folders[domain], PRESETS[domain].labels, text)
        assert name == domain and label == PRESETS[domain].labels[int(want.argmax())]
        assert np.abs(np.array(json.loads(logits)) - want).max() <= 1e-4


def test_bundle_refuses_a_domain_twice_and_writes_nothing(registry: Registry, tiny: str, tmp_path: Path) -> None:
    from loradock.adapters.errors import ExportError
    from loradock.adapters.export.bundle import export_bundle

    register(registry, tiny, tmp_path)
    with pytest.raises(ExportError, match="sentiment named twice"):
        export_bundle(registry, ["sentiment@1", "sentiment@production"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
