"""int8 multi-adapter graph: only base MatMuls quantized, and a per-domain gate on its own eval split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loradock.registry import Domain, Registry, VersionInfo
from tests.onnx_multi_support import TEXTS, peft_folder, tiny_base


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_base(tmp_path_factory.mktemp("tiny-bert")))


def register(
    registry: Registry, base: str, work: Path, domain: str, eval_split: bool, texts: list[str] = TEXTS
) -> object:
    from loradock.adapters.base import base_info

    labels = ("neg", "pos")
    registry.add_domain(Domain(name=domain, labels=labels, base_model=base))
    version = registry.register(
        domain,
        peft_folder(base, work / domain, labels, 4, seed=len(domain)),
        VersionInfo(base_model=base, base_fingerprint=base_info(base)["base_fingerprint"]),
        aliases=["production"],
    )
    if eval_split:
        data = work / f"{domain}-eval" / "eval.jsonl"
        data.parent.mkdir()
        data.write_text("".join(json.dumps({"text": t, "label": labels[i % 2]}) + "\n" for i, t in enumerate(texts)))
        registry.add_artifact(version.ref, "data", "eval", {"eval.jsonl": data})
    return version


def prepared(registry: Registry, base: str, version: object):
    from loradock.serving.backends.onnx import OnnxMultiLoraModel
    from loradock.serving.weights import read_adapter

    model = OnnxMultiLoraModel.for_base(registry, base)
    return model, model.prepare(read_adapter(version, registry.path(version.ref)))


def test_only_base_matmuls_are_quantized(registry: Registry, tiny: str) -> None:
    import onnx

    from loradock.adapters.export.onnx_multi import ensure_graph, lora_nodes

    graph = ensure_graph(registry.home, tiny)
    model = onnx.load(str(graph.int8_path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulInteger") >= 2 * 6  # 2 layers x (q, k, v, out, ffn in, ffn out)
    kept = lora_nodes(model)
    assert kept and graph.meta["int8"]["nodes_kept_fp32"] > 0
    by_name = {n.name: n.op_type for n in model.graph.node}
    assert {by_name[k] for k in kept} <= {"Gather", "Transpose", "MatMul"}  # the LoRA path stays fp32


EVAL = TEXTS * 3  # 21 texts: enough for a paired test to refuse (registry/gate_stats.py MIN_TEXTS)


def flipping(count: int):
    """A stand-in for the graphs' predictions, the same on every CPU: fp32 right on every eval text (labels
    alternate), int8 wrong on the first `count`."""

    def predictions(self, adapter, texts, precision):
        gold = [i % 2 for i in range(len(texts))]
        return gold if precision == "fp32" else [1 - g if i < count else g for i, g in enumerate(gold)]

    return predictions


def test_domain_whose_int8_flips_are_noise_is_served_from_int8(
    registry: Registry, tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 of 21 flipped: 9.5 points over a 0.5-point limit, but McNemar cannot tell 2-0 from a coin."""
    from loradock.serving.backends.onnx import OnnxMultiLoraModel

    monkeypatch.setattr(OnnxMultiLoraModel, "gate_predictions", flipping(2))
    model, adapter = prepared(registry, tiny, register(registry, tiny, tmp_path, "good", True, EVAL))
    gate = adapter.gate
    assert adapter.precision == "int8" and gate["applied"] and gate["eval_size"] == len(EVAL)
    assert (gate["losses"], gate["gains"], gate["verdict"], gate["statistic"]) == (2, 0, "kept", "McNemar exact")
    assert "2 of 21 eval texts changed" in gate["reason"] and gate["reason"].endswith("served from int8")
    logits = model.run(model.encode(TEXTS[:3]), [adapter] * 3)  # the real int8 graph runs, finite
    assert [row.shape for row in logits] == [(2,)] * 3 and all(np.isfinite(row).all() for row in logits)


def test_domain_whose_int8_loses_beyond_noise_is_served_from_fp32_with_the_reason(
    registry: Registry, tiny: str, tmp_path: Path, monkeypatch, caplog
) -> None:
    from loradock.serving.backends.onnx import OnnxMultiLoraModel

    monkeypatch.setattr(OnnxMultiLoraModel, "gate_predictions", flipping(8))
    with caplog.at_level("WARNING"):
        _, adapter = prepared(registry, tiny, register(registry, tiny, tmp_path, "strict", True, EVAL))
    assert adapter.precision == "fp32" and not adapter.gate["passed"] and adapter.gate["verdict"] == "refused"
    assert "says the loss is real" in adapter.gate["reason"] and "served from fp32" in adapter.gate["reason"]
    assert "strict@1 served from fp32" in caplog.text


def test_real_int8_gate_records_the_verdict_its_numbers_give(registry: Registry, tiny: str, tmp_path: Path) -> None:
    """The real int8 graph: what it scores differs by CPU, so only the record's consistency is asserted."""
    from loradock.registry import gate_stats

    _, adapter = prepared(registry, tiny, register(registry, tiny, tmp_path, "real", True, EVAL))
    gate = adapter.gate
    assert gate["applied"] and gate["verdict"] == gate_stats.recheck(gate)["verdict"]
    assert adapter.precision == ("int8" if gate["passed"] else "fp32")


def test_a_stored_gate_whose_verdict_does_not_follow_from_its_numbers_is_run_again(
    registry: Registry, tiny: str, tmp_path: Path, monkeypatch
) -> None:
    from loradock.serving.backends.onnx import OnnxMultiLoraModel

    monkeypatch.setattr(OnnxMultiLoraModel, "gate_predictions", flipping(8))
    version = register(registry, tiny, tmp_path, "edited", True, EVAL)
    model, first = prepared(registry, tiny, version)
    stored = model.graph.folder / "gates" / f"{version.sha256}.json"
    stored.write_text(json.dumps({**first.gate, "verdict": "kept", "passed": True}))
    _, second = prepared(registry, tiny, version)
    assert second.precision == "fp32" and second.gate["verdict"] == "refused"


def test_domain_without_eval_split_is_served_from_fp32(registry: Registry, tiny: str, tmp_path: Path) -> None:
    _, adapter = prepared(registry, tiny, register(registry, tiny, tmp_path, "noeval", eval_split=False))
    assert adapter.precision == "fp32" and "no labelled eval split" in adapter.gate["reason"]


def test_gate_result_is_stored_by_adapter_hash_and_reused(registry: Registry, tiny: str, tmp_path: Path) -> None:
    version = register(registry, tiny, tmp_path, "once", eval_split=True)
    model, first = prepared(registry, tiny, version)
    stored = model.graph.folder / "gates" / f"{version.sha256}.json"
    assert json.loads(stored.read_text())["reason"] == first.gate["reason"]
    stored.write_text(json.dumps({**first.gate, "reason": "from disk"}))
    _, second = prepared(registry, tiny, version)
    assert second.gate["reason"] == "from disk"


def test_graph_and_single_export_share_one_quantizer(registry: Registry, tiny: str) -> None:
    """The multi-adapter graph's int8 settings are the single-adapter export's (one quantizer, one report shape)."""
    from loradock.adapters.export.onnx_multi import ensure_graph
    from loradock.adapters.export.quantize import WEIGHT_OPTIONS

    report = ensure_graph(registry.home, tiny).meta["int8"]
    assert {k: report[k] for k in WEIGHT_OPTIONS} == WEIGHT_OPTIONS
    assert report["preprocess"]["quant_pre_process"]
    assert report["op_types_to_quantize"] == ["MatMul"]
