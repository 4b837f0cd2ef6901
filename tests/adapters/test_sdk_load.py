"""`loradock.load`: the README snippet as written, one text or many, the ONNX backend, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.readme_snippets import python_block
from tests.train_support import build_tiny_bert, one_thread_fixture  # noqa: F401  (fixture)

# The README's snippet, run exactly as written.
SNIPPET = python_block("loradock.load(")
TEXT = "Chest pain radiating to the left arm since this morning."


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with medical@production (a LoRA on a tiny BERT) and its ONNX export."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from loradock.adapters.base import base_info, load_classifier
    from loradock.adapters.export.onnx_export import export_onnx
    from loradock.registry import PRESETS, Registry, VersionInfo

    work = tmp_path_factory.mktemp("sdk")
    base = str(build_tiny_bert(work / "base"))
    labels = list(PRESETS["medical"].labels)
    torch.manual_seed(0)
    model = get_peft_model(
        load_classifier(base, labels),
        LoraConfig(
            task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False
        ),
    )
    model.save_pretrained(str(work / "peft"))
    with Registry(work / "home") as registry:
        info = VersionInfo(base_model=base, base_fingerprint=base_info(base)["base_fingerprint"])
        version = registry.register("medical", work / "peft", info)
        registry.set_alias("medical", "production", version.number)
        export_onnx(registry, version.ref, work / "onnx")
    return work / "home"


def test_readme_snippet_runs_as_written(home: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from loradock.registry import PRESETS

    monkeypatch.setenv("ADAPTERS_HOME", str(home))
    exec(compile(SNIPPET, "README.md:load", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4, out
    labels = set(PRESETS["medical"].labels)
    assert all(line.split()[0] in labels for line in out), out
    assert all(0.0 < float(line.split()[1]) <= 1.0 for line in out[:3]), out
    assert out[3] == out[0].split()[0]  # the ONNX export agrees with PEFT


def test_one_text_or_many_match_plain_peft(home: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import loradock
    from loradock.registry import Registry

    classify = loradock.load("medical@production", home=home)
    many = classify([TEXT, "ok", TEXT + " Worse when climbing stairs."])
    one = classify(TEXT)
    assert many[0].text == TEXT and one.label == many[0].label
    assert abs(one.score - max(np.exp(one.logits) / np.exp(one.logits).sum())) < 1e-6
    with Registry(home) as registry:
        version = registry.resolve("medical@production")
        folder = registry.path(version.ref)
    base = AutoModelForSequenceClassification.from_pretrained(version.base_model, num_labels=len(version.labels))
    plain = PeftModel.from_pretrained(base, str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(version.base_model)
    with torch.inference_mode():
        expected = plain(**tokenizer(TEXT, return_tensors="pt")).logits[0].numpy()
    assert np.abs(np.array(one.logits) - expected).max() <= 1e-5
    assert classify.labels == list(version.labels) and classify.backend == "torch"
    assert classify([]) == []


def test_onnx_backend_matches_torch(home: Path) -> None:
    import loradock

    fast = loradock.load("medical@production", backend="onnx", home=home)
    slow = loradock.load("medical@production", home=home)
    texts = [TEXT, "ok", "Itchy red rash on both hands."]
    assert fast.backend == "onnx" and fast.source.startswith("onnx/")
    assert np.abs(fast.logits(texts) - slow.logits(texts)).max() <= 1e-4


def test_bad_inputs_are_clear_errors(home: Path, tmp_path: Path) -> None:
    import loradock
    from loradock.adapters.errors import ExportError, NoExportError
    from loradock.registry import Registry

    with pytest.raises(ExportError, match="Unknown backend 'tensorrt'"):
        loradock.load("medical@production", backend="tensorrt", home=home)
    with pytest.raises(LookupError):
        loradock.load("medical@nosuchalias", home=home)
    with pytest.raises(TypeError):
        loradock.load("medical@production", home=home)([1, 2])
    # A home without the export: the error names the export command.
    other = tmp_path / "other"
    with Registry(home) as src, Registry(other) as dst:
        version = src.resolve("medical@production")
        from loradock.registry import VersionInfo

        dst.register(
            "medical",
            src.path(version.ref),
            VersionInfo(base_model=version.base_model, base_fingerprint=version.base_fingerprint),
        )
    with pytest.raises(NoExportError, match="adapters export medical@1 --format onnx"):
        loradock.load("medical@1", backend="onnx", home=other)


def test_import_loradock_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, loradock; loradock.load; print('torch' in sys.modules, 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]


def test_a_text_over_the_budget_is_cut_and_logged(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    import loradock
    from loradock.adapters.predict import MAX_CHARS

    classify = loradock.load("medical@production", home=home)
    # One 1 MB "word": a single [UNK] token, so it also fits this tiny BERT's 128 positions.
    long_text = "x" * 1_000_000
    with caplog.at_level("WARNING", logger="loradock.adapters.predict"):
        cut = classify(long_text)
    assert any(f"longer than {MAX_CHARS} characters were cut" in r.getMessage() for r in caplog.records)
    assert cut.logits == classify(long_text[:MAX_CHARS]).logits
    assert cut.text == long_text  # the prediction still names the text it was given
