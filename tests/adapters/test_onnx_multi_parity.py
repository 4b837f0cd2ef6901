"""The multi-adapter ONNX graph: every row of a mixed batch matches the same text alone through plain PEFT.

Adapters of ranks 2, 4 and 8 (one skipping `value`), heads of 2, 3 and 5
labels, mixed in one batch, against PEFT run one text at a time: max abs
logit difference within 1e-4 (fp32 graph). A tiny random BERT keeps it fast;
one slow test does the same on the embedded MiniLM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loradock.registry import Domain, Registry, VersionInfo
from tests.onnx_multi_support import TEXTS, peft_alone, peft_folder, tiny_base

TOLERANCE = 1e-4
ADAPTERS = {  # domain: (labels, rank, targets)
    "two": (("neg", "pos"), 2, ("query", "value")),
    "three": (("a", "b", "c"), 8, ("query", "value")),
    "five": (("l1", "l2", "l3", "l4", "l5"), 4, ("query",)),
}


def register_all(registry: Registry, base: str, work: Path) -> dict[str, Path]:
    from loradock.adapters.base import base_info

    info = VersionInfo(base_model=base, base_fingerprint=base_info(base)["base_fingerprint"])
    folders = {}
    for seed, (domain, (labels, r, targets)) in enumerate(ADAPTERS.items()):
        folders[domain] = peft_folder(base, work / domain, labels, r, seed=seed + 1, targets=targets)
        registry.add_domain(Domain(name=domain, labels=labels, base_model=base))
        registry.register(domain, folders[domain], info, aliases=["production"])
    return folders


def backend_rows(registry: Registry, base: str, texts: list[str], domains: list[str], int8: bool = False):
    from loradock.serving.backends.onnx import OnnxMultiLoraModel
    from loradock.serving.weights import read_adapter

    model = OnnxMultiLoraModel.for_base(registry, base, int8=int8)
    prepared = {}
    for d in set(domains):
        version = registry.resolve(f"{d}@production")
        prepared[d] = model.prepare(read_adapter(version, registry.path(version.ref)))
    return model, model.run(model.encode(texts), [prepared[d] for d in domains])


def check_parity(registry: Registry, base: str, work: Path) -> float:
    folders = register_all(registry, base, work)
    domains = [list(ADAPTERS)[i % 3] for i in range(len(TEXTS))] + ["five", "two"]
    texts = TEXTS + TEXTS[:2]
    _, got = backend_rows(registry, base, texts, domains)
    worst = 0.0
    for text, domain, logits in zip(texts, domains, got):
        want = peft_alone(base, folders[domain], ADAPTERS[domain][0], text)
        assert logits.shape == want.shape == (len(ADAPTERS[domain][0]),)
        worst = max(worst, float(np.abs(logits - want).max()))
    assert worst <= TOLERANCE, worst
    return worst


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_base(tmp_path_factory.mktemp("tiny-bert")))


def test_mixed_batch_matches_peft_row_by_row(registry: Registry, tiny: str, tmp_path: Path) -> None:
    check_parity(registry, tiny, tmp_path)


def test_graph_is_exported_once_per_base_and_reused(registry: Registry, tiny: str, tmp_path: Path) -> None:
    from loradock.adapters.base import base_info
    from loradock.adapters.export.onnx_multi import ensure_graph, graph_folder

    first = ensure_graph(registry.home, tiny)
    stamp = first.fp32_path.stat().st_mtime_ns
    again = ensure_graph(registry.home, tiny)
    assert again.folder == first.folder == graph_folder(registry.home, base_info(tiny)["base_fingerprint"])
    assert again.fp32_path.stat().st_mtime_ns == stamp  # reused, not re-exported
    assert first.meta["fp32_max_abs_diff"] <= TOLERANCE
    assert set(first.targets) == {
        f"bert.encoder.layer.{i}.attention.self.{m}" for i in range(2) for m in ("query", "value")
    }


def test_an_adapter_on_other_modules_is_refused_with_the_way_out(registry: Registry, tiny: str, tmp_path: Path) -> None:
    from loradock.adapters.base import base_info
    from loradock.serving.backends.errors import GraphMismatchError
    from loradock.serving.backends.onnx import OnnxMultiLoraModel
    from loradock.serving.weights import read_adapter

    folder = peft_folder(tiny, tmp_path / "key", ("x", "y"), 4, seed=9, targets=("key",))
    registry.add_domain(Domain(name="keyed", labels=("x", "y"), base_model=tiny))
    version = registry.register(
        "keyed", folder, VersionInfo(base_model=tiny, base_fingerprint=base_info(tiny)["base_fingerprint"])
    )
    model = OnnxMultiLoraModel.for_base(registry, tiny, int8=False)
    with pytest.raises(GraphMismatchError, match="--backend torch"):
        model.prepare(read_adapter(version, registry.path(version.ref)))


@pytest.mark.slow
def test_mixed_batch_matches_peft_on_minilm(registry: Registry, tmp_path: Path) -> None:
    from loradock.registry import DEFAULT_BASE

    check_parity(registry, DEFAULT_BASE, tmp_path)
