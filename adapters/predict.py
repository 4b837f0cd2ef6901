"""Predicting labels: through PEFT on the base, or through onnxruntime on an export."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loradock.registry import AdapterVersion, Registry
from loradock.registry.errors import RegistryError

from loradock.adapters.errors import ExportError

if TYPE_CHECKING:
    import onnxruntime
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
LABELS_FILE = "labels.json"
REPORT_FILE = "loradock.json"  # where it came from and how it was checked
DEFAULT_MAX_LENGTH = 128


@dataclass(frozen=True)
class Prediction:
    text: str
    label: str
    score: float
    logits: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "label": self.label, "score": self.score, "logits": self.logits}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def to_predictions(texts: list[str], logits: np.ndarray, labels: list[str]) -> list[Prediction]:
    probs = softmax(logits.astype(np.float64))
    best = probs.argmax(axis=-1)
    return [
        Prediction(text, labels[int(i)], float(p[i]), [float(x) for x in row])
        for text, i, p, row in zip(texts, best, probs, logits)
    ]


def version_max_length(registry: Registry, version: AdapterVersion) -> int:
    """The length the version was trained at: what inputs are truncated to."""
    value = version.train_args.get("max_length")
    if isinstance(value, int) and value > 0:
        return value
    try:
        return min(registry.domain(version.domain).recipe.max_length, 512)
    except RegistryError:  # a domain row is optional for reading; a default is fine here
        return DEFAULT_MAX_LENGTH


def batches(texts: list[str], batch_size: int) -> list[list[str]]:
    return [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]


def torch_logits(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: list[str],
                 max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 32) -> np.ndarray:
    """Logits of a (PEFT or plain) classifier, in fp32, batch by batch."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for chunk in batches(texts, batch_size):
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            out.append(model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """Full graph optimisation; `threads` caps intra-op threads (None: onnxruntime decides)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # ORT's own warnings about unused initializers are noise here
    return options


class OnnxClassifier:
    """An exported folder (model.onnx, tokenizer, labels.json) run by onnxruntime on CPU."""

    def __init__(self, folder: Path | str, threads: int | None = None, model: Path | None = None) -> None:
        """`model` overrides folder/model.onnx (used while an export is checked before it is written)."""
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        path = model or self.folder / ONNX_FILE
        if not path.is_file():
            raise ExportError(f"No {ONNX_FILE} in {self.folder}; export one with: adapters export DOMAIN@REF --out DIR.")
        self.labels = read_labels(self.folder)
        self.max_length = read_report(self.folder).get("max_length", DEFAULT_MAX_LENGTH)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
            self.session = ort.InferenceSession(str(path), session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # tokenizers and onnxruntime raise assorted types for a broken folder
            raise ExportError(
                f"{self.folder} is not a loadable export ({type(exc).__name__}: {str(exc)[:120]}); "
                "re-export with: adapters export DOMAIN@REF --format onnx --out DIR."
            ) from None
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in self.input_names}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)

    def logits(self, texts: list[str], max_length: int | None = None, batch_size: int = 32) -> np.ndarray:
        out = []
        for chunk in batches(texts, batch_size):
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=max_length or self.max_length,
                                 return_tensors="np")
            out.append(self.run(dict(enc)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, texts: list[str]) -> list[Prediction]:
        return to_predictions(texts, self.logits(texts), self.labels)


def read_labels(folder: Path) -> list[str]:
    """Label names in id order from labels.json, else config.json's id2label."""
    for name in (LABELS_FILE, "config.json"):
        path = folder / name
        if path.is_file():
            try:
                id2label = json.loads(path.read_text()).get("id2label")
                if id2label:
                    return [id2label[k] for k in sorted(id2label, key=int)]
            except (ValueError, AttributeError, TypeError):
                raise ExportError(f"{path} holds no valid id2label map; re-export the model.") from None
    raise ExportError(f"No label map (labels.json or config.json with id2label) in {folder}; re-export it.")


def read_report(folder: Path) -> dict[str, Any]:
    path = folder / REPORT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def predict(registry: Registry, ref: str, texts: list[str], device: str = "cpu") -> list[Prediction]:
    """Labels and scores for `texts` from DOMAIN@REF loaded through PEFT."""
    from loradock.adapters.loading import load_version

    loaded = load_version(registry, ref, device)
    logits = torch_logits(loaded.model, loaded.tokenizer, texts, version_max_length(registry, loaded.version))
    return to_predictions(texts, logits, list(loaded.version.labels))


def predict_onnx(folder: Path | str, texts: list[str], threads: int | None = None) -> list[Prediction]:
    """Labels and scores for `texts` from an exported ONNX folder through onnxruntime."""
    return OnnxClassifier(folder, threads).predict(texts)
