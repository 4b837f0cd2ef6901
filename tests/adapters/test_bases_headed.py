"""Bases saved with a head of their own serve (issue 21, item 5).

People start from fine-tuned checkpoints: a `RobertaForSequenceClassification`
with 2 labels, a `BertForMaskedLM`. Every path that loads a base keeps the
encoder and drops the base's head, so a 3-label domain trains, predicts,
serves (torch and Ray replica), merges and exports on such a base, and every
path gives the same answers. A `BertForMaskedLM` saves no pooler: the one drawn
for it must be the same on every load, or serving would not match training.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.bases_support import build_tiny_base
from tests.train_support import one_thread_fixture, write_keyword_csv  # noqa: F401  (fixture)

TEXTS = [
    "my invoice shows a double charge",
    "the app crashes at login again",
    "parcel lost by the courier",
    "please help",
]
LABELS = ("billing", "technical", "shipping")
BASES = {
    "roberta-seqcls": ("roberta", "sequence-classification"),
    "bert-mlm": ("bert", "masked-lm"),
    "bert-tokens": ("bert", "token-classification"),
}


@dataclass
class Headed:
    name: str
    base: str
    registry: Any
    ref: str


@pytest.fixture(scope="module", params=["roberta-seqcls", "bert-mlm"])
def headed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Headed:
    """A 2-label headed base with a 3-label domain trained on it (the train path)."""
    from loradock.adapters.training.train import TrainOptions, train
    from loradock.registry import Registry

    root = tmp_path_factory.mktemp(f"headed-{request.param}")
    arch, head = BASES[request.param]
    base = str(build_tiny_base(arch, root / "base", head=head, num_labels=2))
    registry = Registry(root / "home")
    data = write_keyword_csv(root / "tickets.csv", rows_per_label=4, labels=LABELS)
    result = train(
        registry,
        "tickets",
        TrainOptions(
            data=str(data),
            base=base,
            epochs=1,
            lr=3e-2,
            batch_size=8,
            max_length=32,
            progress=False,
            min_accuracy=0.0,
            min_macro_f1=0.0,
        ),
    )
    return Headed(request.param, base, registry, result.version.ref)


def predicted(headed: Headed) -> np.ndarray:
    """Logits of the version through `load_version` (what `adapters predict` runs)."""
    from loradock.adapters.predict import predict

    return np.stack([p.logits for p in predict(headed.registry, headed.ref, TEXTS)])


@pytest.mark.parametrize("name", sorted(BASES))
@pytest.mark.parametrize("labels", [("u",), ("a", "b"), LABELS])
def test_the_base_head_is_never_reused(tmp_path: Path, name: str, labels: tuple[str, ...]) -> None:
    """Any label count loads; the head is fresh (even where the base's has the same size) and seeded by the caller."""
    import torch
    from safetensors.torch import load_file

    from loradock.adapters.base import load_classifier

    arch, head = BASES[name]
    base = build_tiny_base(arch, tmp_path / "base", head=head, num_labels=2)
    torch.manual_seed(0)
    model = load_classifier(str(base), list(labels))
    assert model.config.num_labels == len(labels) and model.config.id2label[0] == labels[0]
    saved = load_file(str(base / "model.safetensors"))
    for key, tensor in model.state_dict().items():
        # Random matrices only: biases and norms start as zeros and ones in either head.
        if key in saved and not key.startswith(model.base_model_prefix + ".") and tensor.dim() == 2:
            assert not torch.equal(saved[key], tensor), f"{key} came from the base's own head"
    encoder = {k: v for k, v in saved.items() if k.startswith(model.base_model_prefix + ".")}
    assert encoder and all(torch.equal(model.state_dict()[k], v) for k, v in encoder.items())
    torch.manual_seed(0)
    again = load_classifier(str(base), list(labels))
    assert all(torch.equal(t, again.state_dict()[k]) for k, t in model.state_dict().items())


def test_weights_the_base_lacks_are_the_same_on_every_load(tmp_path: Path) -> None:
    """A BertForMaskedLM has no pooler; the one drawn for it does not depend on the caller's seed."""
    import torch

    from loradock.adapters.base import load_classifier

    base = str(build_tiny_base("bert", tmp_path / "base", head="masked-lm"))
    torch.manual_seed(0)
    one = load_classifier(base, ["a", "b"]).bert.pooler.dense.weight
    torch.manual_seed(1)
    other = load_classifier(base, list(LABELS)).bert.pooler.dense.weight
    assert torch.equal(one, other)


def test_train_and_predict_on_a_headed_base(headed: Headed) -> None:
    version = headed.registry.resolve(headed.ref)
    assert sorted(version.labels) == sorted(LABELS)
    logits = predicted(headed)
    assert logits.shape == (len(TEXTS), 3) and np.isfinite(logits).all()


def test_serve_matches_predict(headed: Headed) -> None:
    from loradock.serving.backends.torch_backend import MultiLoraModel
    from loradock.serving.weights import read_adapter

    model = MultiLoraModel(headed.base, max_length=32)
    version = headed.registry.resolve(headed.ref)
    weights = model.prepare(read_adapter(version, headed.registry.path(headed.ref)))
    out = model.run(model.encode(TEXTS), [weights] * len(TEXTS))
    assert np.abs(np.stack([o.numpy() for o in out]) - predicted(headed)).max() <= 1e-5


def test_ray_replica_matches_predict(headed: Headed) -> None:
    """The Ray model deployment, called directly (its load path is the same engine; no cluster needed)."""
    from loradock.serving.config import ServeConfig
    from loradock.serving.ray.replica import AdapterReplica

    version = headed.registry.resolve(headed.ref)
    folder = headed.registry.path(headed.ref)
    files = {name: (folder / name).read_bytes() for name in version.files}

    async def shipped() -> dict[str, bytes]:
        return files

    replica = AdapterReplica(ServeConfig(base_model=headed.base, device="cpu", max_length=32, workers=1))
    try:
        out = asyncio.run(replica.classify(version, [shipped()], TEXTS))
    finally:
        replica.engine.close()
    assert "error" not in out, out
    assert np.abs(np.asarray(out["logits"]) - predicted(headed)).max() <= 1e-4


def test_merge_matches_predict(headed: Headed, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from loradock.adapters.export.merge import merge_version

    result = merge_version(headed.registry, headed.ref, tmp_path / "merged")
    model = AutoModelForSequenceClassification.from_pretrained(str(result.out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(result.out))
    with torch.inference_mode():
        merged = model(**tokenizer(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=32)).logits
    assert model.config.num_labels == 3
    assert np.abs(merged.numpy() - predicted(headed)).max() <= 1e-4


def test_onnx_export_matches_predict(headed: Headed, tmp_path: Path) -> None:
    from loradock.adapters.export.onnx_export import export_onnx
    from loradock.adapters.predict import OnnxClassifier

    result = export_onnx(headed.registry, headed.ref, tmp_path / "onnx")
    got = np.stack([OnnxClassifier(result.out).logits([t], max_length=32)[0] for t in TEXTS])
    assert np.abs(got - predicted(headed)).max() <= 1e-4


def test_onnx_backend_graph_on_a_headed_base(headed: Headed, tmp_path: Path) -> None:
    """The multi-adapter graph of `--backend onnx` exports (and checks itself) on a BERT base with a head;
    RoBERTa keeps no pooler and gets the backend's usual refusal, not a loading traceback."""
    from loradock.adapters.errors import ExportError
    from loradock.adapters.export.onnx_multi import export_graph

    if headed.name == "roberta-seqcls":
        with pytest.raises(ExportError, match="no pooler"):
            export_graph(headed.base, tmp_path / "graph", quantize=False)
        return
    info = export_graph(headed.base, tmp_path / "graph", quantize=False)
    assert (tmp_path / "graph").is_dir() and info is not None
