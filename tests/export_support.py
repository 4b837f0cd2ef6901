"""Shared state for the merge/export/predict tests: one real version, merged and exported once.

Merging and exporting MiniLM takes seconds, so a session-scoped fixture does it
once (fp32 merge, fp32 ONNX, int8 ONNX) and the tests check what came out.
Import `exported` into a test module to use it.

int8 kernels differ by CPU, so nothing here depends on what real int8 scores:
the fixture's int8 export allows any accuracy drop (it is always written),
and gate behaviour is tested with `FlippingQuantizer`, a stand-in whose effect
on predictions is the same on every CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loradock.registry import DEFAULT_BASE, PRESETS, Registry, VersionInfo

SAMPLE = Path(__file__).resolve().parents[1] / "adapters" / "samples" / "sentiment.jsonl"
# Mixed lengths on purpose: padding inside a batch and truncation both happen.
TEXTS = [
    "A warm, funny and moving film; I loved every minute of it.",
    "Dull.",
    (
        "The plot meanders for two hours, the dialogue is wooden, and not even the talented cast "
        "can rescue a script this lazy; by the end I was checking my watch every five minutes."
    ),
    "ok",
    "Beautifully shot, though the second half drags.",
    "I would happily watch it again tomorrow with my whole family, popcorn and all.",
]


def varied_texts(count: int) -> list[str]:
    return [" ".join(TEXTS[(i + j) % len(TEXTS)] for j in range(1 + i % 5)) for i in range(count)]


def register_version(
    registry: Registry, folder: Path, domain: str = "sentiment", eval_data: bool = True, info: VersionInfo | None = None
) -> Any:
    """Register a PEFT folder (and, like training does, an eval split as artifact data/eval)."""
    from loradock.adapters.base import base_info

    info = info or VersionInfo(base_model=DEFAULT_BASE, base_fingerprint=base_info(DEFAULT_BASE)["base_fingerprint"])
    version = registry.register(domain, folder, info)
    if eval_data:
        registry.add_artifact(version.ref, "data", "eval", {"eval.jsonl": SAMPLE})
    return version


def adapter_logits(registry: Registry, ref: str, texts: list[str], max_length: int = 128) -> np.ndarray:
    """Logits from the unmerged PEFT adapter, computed independently of the code under test."""
    import torch

    from loradock.adapters.loading import load_version

    loaded = load_version(registry, ref)
    enc = loaded.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        return loaded.model(**enc).logits.numpy()


def leftovers(parent: Path) -> list[str]:
    """Temporary folders a failed merge/export might have left beside its --out."""
    return sorted(p.name for p in parent.iterdir() if ".incomplete" in p.name or p.name.endswith(".old"))


def state_dict_keys(folder: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "np") as fh:
        return list(fh.keys())


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def train_on_sample(folder: Path, steps: int = 300, seed: int = 0, domain: str = "sentiment") -> Path:
    """A PEFT LoRA folder whose classifier head is trained on the embedded sample of a preset domain.

    LoRA A/B are random (init_lora_weights=False, so they change the logits);
    the head is fitted on the LoRA model's pooled features, which takes a
    second rather than the minute full training takes here. A random head
    leaves logit gaps of ~0.01 that int8 rounding flips; a fitted one gives
    confident margins, so the accuracy gate measures quantization, not coin flips.
    """
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from loradock.adapters.base import load_classifier, load_tokenizer

    sample = SAMPLE.with_name(f"{domain}.jsonl")
    rows = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
    labels = list(PRESETS[domain].labels)
    torch.manual_seed(seed)
    model = get_peft_model(
        load_classifier(DEFAULT_BASE, labels),
        LoraConfig(
            task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, target_modules=["query", "value"], init_lora_weights=False
        ),
    )
    model.eval()
    tokenizer = load_tokenizer(DEFAULT_BASE)
    enc = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=64, return_tensors="pt")
    targets = torch.tensor([labels.index(r["label"]) for r in rows])
    with torch.no_grad():
        features = model.base_model.model.bert(**enc).pooler_output
    head = model.base_model.model.classifier.modules_to_save["default"]
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        torch.nn.functional.cross_entropy(head(features), targets).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(str(folder))
    return folder


def token_sums(tokenizer: Any, texts: list[str], max_length: int) -> list[int]:
    """Per text, the sum of its token ids as the model sees them: what `FlippingQuantizer` recognises rows by."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [int(sum(ids)) for ids in enc["input_ids"]]


@dataclass
class FlippingQuantizer:
    """A stand-in quantizer: the fp32 graph with the logits of chosen rows negated, which flips their argmax.

    `rows` are token-id sums (`token_sums`) of the texts to flip; None flips
    every text. The graph stays fp32, so what it predicts is the same on every
    CPU: a gate test controls exactly how many predictions change.
    """

    rows: list[int] | None = None

    def __call__(self, fp32: Path, out: Path) -> dict[str, Any]:
        import onnx
        from onnx import TensorProto, helper

        model = onnx.load(str(fp32))
        graph = model.graph
        (last,) = [n for n in graph.node if "logits" in n.output]
        last.output[list(last.output).index("logits")] = "raw_logits"
        nodes = [helper.make_node("Neg", ["raw_logits"], ["negated"])]
        if self.rows is None:
            nodes.append(helper.make_node("Identity", ["negated"], ["logits"]))
        else:
            graph.initializer.extend(
                [
                    helper.make_tensor("flip_sums", TensorProto.INT64, [1, len(self.rows)], self.rows),
                    helper.make_tensor("sum_axis", TensorProto.INT64, [1], [1]),
                    helper.make_tensor("col_axis", TensorProto.INT64, [1], [1]),
                ]
            )
            nodes += [
                helper.make_node("Mul", ["input_ids", "attention_mask"], ["kept_ids"]),
                helper.make_node("ReduceSum", ["kept_ids", "sum_axis"], ["row_sums"], keepdims=1),  # [B, 1]
                helper.make_node("Equal", ["row_sums", "flip_sums"], ["hits"]),  # [B, K]
                helper.make_node("Cast", ["hits"], ["hits_int"], to=TensorProto.INT64),
                helper.make_node("ReduceMax", ["hits_int"], ["hit"], axes=[1], keepdims=1),  # [B, 1]
                helper.make_node("Cast", ["hit"], ["flip"], to=TensorProto.BOOL),
                helper.make_node("Where", ["flip", "negated", "raw_logits"], ["logits"]),
            ]
        graph.node.extend(nodes)
        onnx.save(model, str(out))
        return {
            "method": "stand-in: fp32 with chosen rows' logits negated",
            "rows": "all" if self.rows is None else len(self.rows),
        }


@dataclass
class Exported:
    home: Path
    registry: Registry
    version: Any
    outputs: Path
    merged: Any
    fp32: Any
    int8: Any


_BUILT: dict[str, Exported] = {}


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """sentiment@1 (LoRA trained on the embedded sample, eval data attached), merged, exported fp32 and int8.

    Built once per test session: each module that imports this fixture gets
    its own fixture definition, so the cache lives here rather than in pytest.
    """
    if "sentiment" not in _BUILT:
        from loradock.adapters.export.merge import merge_version
        from loradock.adapters.export.onnx_export import export_onnx

        root = tmp_path_factory.mktemp("exported")
        registry = Registry(root / "home")
        version = register_version(registry, train_on_sample(root / "trained"))
        outputs = root / "out"
        merged = merge_version(registry, version.ref, outputs / "merged")
        fp32 = export_onnx(registry, version.ref, outputs / "fp32")
        # Any drop allowed: real int8 scores differ by CPU, and the tests that use this export must not.
        int8 = export_onnx(registry, version.ref, outputs / "int8", quantize="int8", max_accuracy_drop=100.0)
        _BUILT["sentiment"] = Exported(root / "home", registry, version, outputs, merged, fp32, int8)
    return _BUILT["sentiment"]
