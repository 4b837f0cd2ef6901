"""adapters export --format onnx: fp32 parity at several shapes, int8 behind the accuracy gate, reuse."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from loradock.adapters.errors import ParityError
from loradock.cli.main import cli

from .export_support import (  # noqa: F401  (exported is a fixture)
    adapter_logits,
    exported,
    leftovers,
    read_json,
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


def test_int8_passes_the_accuracy_gate_on_the_versions_eval_data(exported):
    report = exported.int8.report
    gate = report["gate"]
    assert gate["applied"] and gate["eval_source"].startswith("artifact data/eval") and gate["eval_size"] == 100
    assert gate["accuracy_adapter"] - gate["accuracy_export"] == pytest.approx(gate["accuracy_drop"])
    assert gate["accuracy_drop"] <= 1.0 and gate["max_accuracy_drop"] == 1.0
    assert report["argmax_agreement"] >= 0.98
    assert report["quantization"]["preprocess"]["quant_pre_process"]
    assert report["fp32_from"] == "onnx/fp32-opset17"  # quantized the checked fp32 export, not a fresh one


def test_same_export_again_is_copied_from_the_registry(exported, tmp_path, monkeypatch):
    from loradock.adapters.export import onnx_export

    def must_not_export(*args, **kwargs):
        raise AssertionError("exported again instead of reusing the registered artifact")

    monkeypatch.setattr(onnx_export, "merge_in_memory", must_not_export)
    result = onnx_export.export_onnx(exported.registry, exported.version.ref, tmp_path / "again", quantize="int8")
    assert result.reused and result.artifact.name == "int8-opset17"
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (exported.int8.out / "model.onnx").read_bytes()


def test_an_int8_model_that_loses_accuracy_fails_the_gate(exported, tmp_path, monkeypatch):
    """A quantizer that breaks the model (here: negated logits) is caught, with the measured drop."""
    import onnx

    from loradock.adapters.export import onnx_export

    real = onnx_export.quantize_int8

    def broken_quantize(fp32, out):
        info = real(fp32, out)
        model = onnx.load(str(out))
        (last,) = [n for n in model.graph.node if "logits" in n.output]
        last.output[list(last.output).index("logits")] = "raw_logits"
        model.graph.node.append(onnx.helper.make_node("Neg", ["raw_logits"], ["logits"]))
        onnx.save(model, str(out))
        return info

    monkeypatch.setattr(onnx_export, "quantize_int8", broken_quantize)
    out = tmp_path / "broken"
    with pytest.raises(ParityError) as err:
        onnx_export.export_onnx(exported.registry, exported.version.ref, out, quantize="int8", opset=16)
    message = str(err.value)
    drop = re.search(r"scores (\S+)% on 100 eval texts, (\S+) points below the fp32 adapter's (\S+)%", message)
    assert drop and float(drop.group(2)) > 1.0 and "allowed drop of 1" in message
    assert not out.exists() and leftovers(tmp_path) == []
    assert exported.registry.find_artifact(exported.version.ref, "onnx", "int8-opset16") is None
