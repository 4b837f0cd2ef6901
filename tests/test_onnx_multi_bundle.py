"""The onnx-multi edge bundle: written by `adapters export D1,D2 --format onnx-multi`, run by the README
snippet exactly as written, in a fresh process that imports neither torch nor loradock."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from loradock.registry import PRESETS, Registry, VersionInfo

from tests.onnx_multi_support import peft_alone, peft_folder, tiny_base

ROOT = Path(__file__).resolve().parents[1]

# The README snippet (the lead merges it into README.md; once there, the README's copy is the one tested).
SNIPPET = '''\
import json
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

bundle = "edge-bundle"  # the --out folder
meta = json.load(open(f"{bundle}/bundle.json"))
tokenizer = Tokenizer.from_file(f"{bundle}/tokenizer.json")
tokenizer.enable_truncation(meta["max_length"])
tokenizer.enable_padding(pad_id=meta["pad_token_id"])
session = ort.InferenceSession(f"{bundle}/model.onnx")
adapters = dict(np.load(f"{bundle}/adapters.npz"))
heads = dict(np.load(f"{bundle}/heads.npz"))

texts = ["I loved every minute of it.", "Crushing chest pain since this morning."]
domains = ["sentiment", "medical"]  # each row its own adapter, in one batch
enc = tokenizer.encode_batch(texts)
feed = {
    "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
    "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
    "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    "adapter_index": np.array([meta["domains"].index(d) for d in domains], dtype=np.int64),
    **adapters,
}
pooled = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
for domain, row in zip(domains, pooled):
    logits = row @ heads[f"{domain}.weight"].T + heads[f"{domain}.bias"]
    print(domain, meta["labels"][domain][int(logits.argmax())], logits.tolist())
'''
NO_PROJECT = ("\nimport sys\nleaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'loradock'))\n"
              "assert not leaked, leaked\n")


def readme_snippet() -> str:
    """The README's python block about onnx-multi bundles when the README has one, else SNIPPET."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"```python\n(.*?Tokenizer.*?bundle\.json.*?)```", text, re.S)
    return found.group(1) if found else SNIPPET


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


def test_readme_snippet_runs_the_bundle_without_torch_or_loradock(registry: Registry, tiny: str,
                                                                  tmp_path: Path) -> None:
    from loradock.cli.main import cli

    folders = register(registry, tiny, tmp_path)
    result = CliRunner().invoke(cli, ["export", "sentiment@production,medical@1,education", "--format",
                                      "onnx-multi", "--out", str(tmp_path / "edge-bundle")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "one onnx-multi bundle" in result.output
    meta = json.loads((tmp_path / "edge-bundle" / "bundle.json").read_text())
    assert meta["domains"] == ["sentiment", "medical", "education"]
    proc = subprocess.run([sys.executable, "-c", readme_snippet() + NO_PROJECT], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
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
    from loradock.serving.backends.bundle import export_bundle

    register(registry, tiny, tmp_path)
    with pytest.raises(ExportError, match="sentiment named twice"):
        export_bundle(registry, ["sentiment@1", "sentiment@production"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
