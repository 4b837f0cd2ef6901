"""adapters export --format onnx: fp32 parity at several shapes, int8 behind the accuracy gate, reuse."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from loradock.adapters.errors import ParityError
from loradock.cli.main import cli
from tests.export_support import (  # noqa: F401  (exported is a fixture)
    SAMPLE,
    FlippingQuantizer,
    adapter_logits,
    exported,
    leftovers,
    read_json,
    token_sums,
    varied_texts,
)

pytestmark = pytest.mark.slow


def _ort_logits(session, tokenizer, texts: list[str], max_length: int) -> np.ndarray:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("batch,max_length", [(1, 6), (2, 128), (5, 20), (11, 48)])
def test_fp32_onnx_matches_the_adapter_at_several_batch_sizes_and_lengths(exported, batch, max_length):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    folder = exported.fp32.out
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    texts = varied_texts(batch)
    got = _ort_logits(session, tokenizer, texts, max_length)
    expected = adapter_logits(exported.registry, exported.version.ref, texts, max_length)
    assert got.shape == (batch, 2)
    assert np.abs(got - expected).max() <= 1e-4


def test_fp32_export_has_dynamic_axes_and_runs_on_its_own(exported):
    import onnx

    folder = exported.fp32.out
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    for tensor in graph.input:
        dims = tensor.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"], tensor.name
    assert read_json(folder / "labels.json")["id2label"] == {"0": "negative", "1": "positive"}
    assert (folder / "tokenizer.json").is_file() and (folder / "config.json").is_file()
    report = read_json(folder / "loradock.json")
    assert report["source"]["ref"] == exported.version.ref and report["opset"] == 17


def test_exports_are_registered_with_their_parity_reports(exported, monkeypatch):
    registry, ref = exported.registry, exported.version.ref
    fp32 = registry.find_artifact(ref, "onnx", "fp32-opset17")
    int8 = registry.find_artifact(ref, "onnx", "int8-opset17")
    assert fp32 is not None and int8 is not None
    assert fp32.meta["fp32_max_abs_diff"] <= 1e-4 and fp32.meta["tolerance"] == 1e-4
    assert len(fp32.meta["shapes"]) >= 4 and {s["batch"] for s in fp32.meta["shapes"]} >= {1, 16}
    assert fp32.meta["exporter"] == "torch.onnx.export(dynamo=False)"
    assert {"torch", "onnx", "onnxruntime"} <= set(fp32.meta["libraries"])
    assert int8.meta["sizes"]["model.onnx"] < 0.4 * fp32.meta["sizes"]["model.onnx"]

    monkeypatch.setenv("ADAPTERS_HOME", str(exported.home))
    shown = CliRunner().invoke(cli, ["show", ref], catch_exceptions=False)
    assert "onnx/fp32-opset17" in shown.output and "onnx/int8-opset17" in shown.output


def test_real_int8_runs_and_its_gate_records_the_verdict_its_numbers_give(exported):
    """Only what holds on every CPU: int8 scores differ by CPU, so no assertion on them."""
    from loradock.adapters.predict import OnnxClassifier
    from loradock.registry import gate_stats

    report = exported.int8.report
    gate = report["gate"]
    assert gate["applied"] and gate["eval_source"].startswith("artifact data/eval") and gate["eval_size"] == 100
    assert gate["accuracy_adapter"] - gate["accuracy_export"] == pytest.approx(gate["accuracy_drop"])
    assert gate["verdict"] == gate_stats.recheck(gate)["verdict"] and gate["statistic"]
    assert gate["losses"] + gate["gains"] <= gate["agreement"]["changed"] <= gate["agreement"]["texts"]
    assert 0.0 <= report["argmax_agreement"] <= 1.0
    assert report["quantization"]["preprocess"]["quant_pre_process"]
    assert report["fp32_from"] == "onnx/fp32-opset17"  # quantized the checked fp32 export, not a fresh one
    logits = OnnxClassifier(exported.int8.out).logits(varied_texts(5))
    assert logits.shape == (5, 2) and np.isfinite(logits).all()


def test_same_export_again_is_copied_from_the_registry(exported, tmp_path, monkeypatch):
    from loradock.adapters.export import onnx_export

    def must_not_export(*args, **kwargs):
        raise AssertionError("exported again instead of reusing the registered artifact")

    monkeypatch.setattr(onnx_export, "merge_in_memory", must_not_export)
    result = onnx_export.export_onnx(
        exported.registry, exported.version.ref, tmp_path / "again", quantize="int8", max_accuracy_drop=100.0
    )
    assert result.reused and result.artifact.name == "int8-opset17"
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (exported.int8.out / "model.onnx").read_bytes()


def _flippable(exported, count: int) -> list[int]:
    """Token sums of `count` eval texts the adapter gets right, each sum unique among the eval texts."""
    from collections import Counter

    from transformers import AutoTokenizer

    from loradock.adapters.export.probes import read_jsonl

    texts, labels = read_jsonl(SAMPLE)
    max_length = exported.fp32.report["max_length"]
    sums = token_sums(AutoTokenizer.from_pretrained(str(exported.fp32.out)), texts, max_length)
    predicted = adapter_logits(exported.registry, exported.version.ref, texts, max_length).argmax(-1)
    names = list(exported.version.labels)
    unique = Counter(sums)
    chosen = [s for s, p, gold in zip(sums, predicted, labels) if unique[s] == 1 and names[p] == gold][:count]
    assert len(chosen) == count
    return chosen


def test_int8_that_flips_a_few_right_answers_is_kept_as_noise(exported, tmp_path):
    """3 of 100 flipped: 3 points over a 1-point limit, but McNemar cannot tell 3-0 from a coin (p=0.125)."""
    from loradock.adapters.export import onnx_export
    from loradock.registry import gate_stats

    result = onnx_export.export_onnx(
        exported.registry,
        exported.version.ref,
        tmp_path / "kept",
        quantize="int8",
        opset=15,
        quantizer=FlippingQuantizer(_flippable(exported, 3)),
    )
    gate = result.report["gate"]
    assert (gate["losses"], gate["gains"], gate["eval_size"]) == (3, 0, 100)
    assert gate["accuracy_drop"] == pytest.approx(3.0) and gate["max_accuracy_drop"] == 1.0
    assert gate["verdict"] == "kept" and gate["statistic"] == gate_stats.MCNEMAR
    assert gate["mcnemar_p"] == pytest.approx(0.125)
    assert "3 of 100 eval texts changed" in gate["reason"] and "cannot tell that from noise" in gate["reason"]
    assert (tmp_path / "kept" / "model.onnx").is_file()
    assert exported.registry.find_artifact(exported.version.ref, "onnx", "int8-opset15").meta["gate"] == gate


def test_int8_that_flips_many_right_answers_is_refused_and_nothing_written(exported, tmp_path):
    """8 of 100 flipped: beyond noise (McNemar p=0.0039) and over the limit: refused, with the numbers."""
    from loradock.adapters.errors import AccuracyGateRefused
    from loradock.adapters.export import onnx_export

    out = tmp_path / "refused"
    with pytest.raises(AccuracyGateRefused) as err:
        onnx_export.export_onnx(
            exported.registry,
            exported.version.ref,
            out,
            quantize="int8",
            opset=16,
            quantizer=FlippingQuantizer(_flippable(exported, 8)),
        )
    assert isinstance(err.value, ParityError)
    gate = err.value.gate
    assert (gate["losses"], gate["gains"], gate["verdict"]) == (8, 0, "refused")
    assert gate["mcnemar_p"] == pytest.approx(0.5**8)
    message = str(err.value)
    assert re.search(r"8 of 100 eval texts changed .*\+8\.00 points lost.*says the loss is real", message)
    assert "Nothing was written" in message and "--max-accuracy-drop" in message
    assert not out.exists() and leftovers(tmp_path) == []
    assert exported.registry.find_artifact(exported.version.ref, "onnx", "int8-opset16") is None


def test_a_reused_export_whose_verdict_does_not_follow_from_its_numbers_is_refused(exported):
    from types import SimpleNamespace

    from loradock.adapters.export.onnx_export import check_recorded

    artifact = exported.registry.find_artifact(exported.version.ref, "onnx", "int8-opset17")
    gate = {
        **artifact.meta["gate"],
        "losses": 50,
        "gains": 0,
        "reference_right": 100,
        "candidate_right": 50,
        "accuracy_drop": 50.0,
        "max_accuracy_drop": 1.0,
        "verdict": "kept",
    }
    with pytest.raises(ParityError, match="records the verdict 'kept', but its own numbers give 'refused'"):
        check_recorded(SimpleNamespace(name="int8-opset17", meta={**artifact.meta, "gate": gate}), 1e-4, 100.0)
    fine = {**gate, "verdict": "refused"}  # consistent, but refused at the drop asked for now
    with pytest.raises(ParityError, match="fails the accuracy gate at --max-accuracy-drop 1"):
        check_recorded(SimpleNamespace(name="int8-opset17", meta={**artifact.meta, "gate": fine}), 1e-4, 1.0)
