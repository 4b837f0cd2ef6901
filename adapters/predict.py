"""Predicting labels: through PEFT on the base, or through onnxruntime on an export.

The ONNX path imports neither torch nor transformers (onnxruntime and
`tokenizers` load in ~0.3 s against ~6 s), which is what makes a one-off
`adapters predict` quick when the version has an ONNX export.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import numpy as np

from loradock.adapters.errors import ExportError, NoExportError, PredictInputError
from loradock.registry import AdapterVersion, Registry
from loradock.registry.errors import RegistryError
from loradock.registry.json_files import read_json

if TYPE_CHECKING:
    import tokenizers
    import torch
    from transformers import PreTrainedTokenizerBase

    from loradock.registry import Artifact

log = logging.getLogger(__name__)
T = TypeVar("T")

ONNX_FILE = "model.onnx"
LABELS_FILE = "labels.json"
REPORT_FILE = "loradock.json"  # where it came from and how it was checked
DEFAULT_MAX_LENGTH = 128
DEFAULT_BATCH_SIZE = 32
# Characters of one text that reach the tokenizer. A tokenizer's time and memory follow the input's
# length, not max_length: a 100 MB line took 139 s and 13.5 GB before truncation (issue 22, item 5).
# 4,000 characters hold well over 512 tokens; the server refuses longer texts (ServeConfig.max_chars).
MAX_CHARS = 4000
ONNX_KIND = "onnx"
BACKENDS = ("auto", "onnx", "torch")


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
        rule = version.train_args.get("recipe_rule")
        if isinstance(rule, dict) and rule.get("max_length"):
            # Chosen from the training texts' lengths, not asked for: short training texts must not cut
            # longer inputs short, so the usual default stays the floor.
            return max(value, DEFAULT_MAX_LENGTH)
        return value
    try:
        return min(registry.domain(version.domain).recipe.max_length, 512)
    except RegistryError:  # a domain row is optional for reading; a default is fine here
        return DEFAULT_MAX_LENGTH


def over_budget(texts: list[str], max_chars: int = MAX_CHARS) -> int:
    """How many texts are longer than the character budget (and so are cut before tokenizing)."""
    return sum(len(t) > max_chars for t in texts)


def within_budget(texts: list[str], max_chars: int = MAX_CHARS) -> list[str]:
    """`texts` cut to `max_chars` characters each: what every tokenizer call here is given."""
    cut = over_budget(texts, max_chars)
    if not cut:
        return texts
    log.warning("%d text(s) longer than %d characters were cut to %d before tokenizing", cut, max_chars, max_chars)
    return [t[:max_chars] for t in texts]


def read_lines(stream: TextIO, max_chars: int = MAX_CHARS) -> list[str]:
    """Non-blank lines of `stream`, each kept to `max_chars` + 1 characters while reading (so a 1 GB
    line never sits in memory whole, and `within_budget` still sees that it was longer)."""
    lines: list[str] = []
    while True:
        line = stream.readline(max_chars + 1)
        if not line:
            return lines
        if not line.endswith("\n"):  # longer than the budget: skip the rest of it piece by piece
            rest = line
            while rest and not rest.endswith("\n"):
                rest = stream.readline(1 << 20)
        line = line.rstrip("\r\n")
        if line.strip():
            lines.append(line)


def batches(items: list[T], batch_size: int) -> list[list[T]]:
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def torch_logits(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int = DEFAULT_MAX_LENGTH,
    batch_size: int = 32,
) -> np.ndarray:
    """Logits of a (PEFT or plain) classifier, in fp32, batch by batch."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for chunk in batches(texts, batch_size):
            enc = tokenizer(
                within_budget(chunk), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            out.append(model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def fast_tokenizer(folder: Path) -> tokenizers.Tokenizer:
    """The folder's tokenizer.json through `tokenizers` alone: the same encoder transformers' fast
    tokenizer wraps, without importing transformers (and, with it, torch)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    pad = "[PAD]"
    config = folder / "tokenizer_config.json"
    if config.is_file():
        try:
            value = read_json(config).get("pad_token")
        except (ValueError, AttributeError):
            raise ExportError(f"{config} is not a JSON object; re-export the model.") from None
        pad = value.get("content", pad) if isinstance(value, dict) else (value or pad)
    pad_id = tokenizer.token_to_id(pad)
    tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token=pad)
    return tokenizer


class OnnxClassifier:
    """An exported folder (model.onnx, tokenizer, labels.json) run by onnxruntime on CPU."""

    def __init__(self, folder: Path | str, threads: int | None = None, model: Path | None = None) -> None:
        """`model` overrides folder/model.onnx (used while an export is checked before it is written)."""
        from loradock.adapters.ort_session import session

        self.folder = Path(folder)
        path = model or self.folder / ONNX_FILE
        if not path.is_file():
            raise ExportError(
                f"No {ONNX_FILE} in {self.folder}; export one with: adapters export DOMAIN@REF --out DIR."
            )
        self.labels = read_labels(self.folder)
        self.max_length = read_report(self.folder).get("max_length", DEFAULT_MAX_LENGTH)
        self._hf_tokenizer: PreTrainedTokenizerBase | None = None
        try:
            self.encoder = fast_tokenizer(self.folder)
            self.session = session(path, threads)
        except Exception as exc:  # tokenizers and onnxruntime raise assorted types for a broken folder
            raise ExportError(
                f"{self.folder} is not a loadable export ({type(exc).__name__}: {str(exc)[:120]}); "
                "re-export with: adapters export DOMAIN@REF --format onnx --out DIR."
            ) from None
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The transformers tokenizer of the folder (export checks compare shapes with it); loaded on first use."""
        if self._hf_tokenizer is None:
            from transformers import AutoTokenizer

            self._hf_tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        return self._hf_tokenizer

    def encode(self, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        """input_ids, attention_mask and token_type_ids, padded to the longest row, truncated to max_length."""
        self.encoder.enable_truncation(max_length)
        rows = self.encoder.encode_batch(within_budget(texts))
        return {
            "input_ids": np.array([r.ids for r in rows], dtype=np.int64),
            "attention_mask": np.array([r.attention_mask for r in rows], dtype=np.int64),
            "token_type_ids": np.array([r.type_ids for r in rows], dtype=np.int64),
        }

    def run(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in self.input_names}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)

    def logits(self, texts: list[str], max_length: int | None = None, batch_size: int = 32) -> np.ndarray:
        out = []
        for chunk in batches(texts, batch_size):
            out.append(self.run(self.encode(chunk, max_length or self.max_length)))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, texts: list[str]) -> list[Prediction]:
        return to_predictions(texts, self.logits(texts), self.labels)


def read_labels(folder: Path) -> list[str]:
    """Label names in id order from labels.json, else config.json's id2label."""
    for name in (LABELS_FILE, "config.json"):
        path = folder / name
        if path.is_file():
            try:
                id2label = read_json(path).get("id2label")
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


@dataclass(frozen=True)
class PredictRun:
    """Predictions and the path that made them: `backend` is 'onnxruntime' or 'torch'."""

    ref: str
    backend: str
    source: str
    predictions: list[Prediction]


def onnx_artifact(registry: Registry, version: AdapterVersion) -> Artifact | None:
    """The version's ONNX export to predict with: fp32 (exact) before int8, default exporter first."""
    usable = [
        a for a in registry.artifacts(version.ref, ONNX_KIND) if ONNX_FILE in a.files and "tokenizer.json" in a.files
    ]
    usable.sort(key=lambda a: (a.meta.get("quantize") is not None, "dynamo" in a.name, a.name))
    return usable[0] if usable else None


def by_length(texts: list[str], batch_size: int, logits_of: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Logits in input order, computed on batches of similar length (less padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts = [logits_of([texts[i] for i in chunk]) for chunk in batches(order, batch_size)]
    logits = np.concatenate(parts)
    out = np.empty_like(logits)
    out[order] = logits
    return out


def predict_version(
    registry: Registry,
    ref: str,
    texts: list[str],
    *,
    backend: str = "auto",
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    before_torch: Callable[[], None] | None = None,
) -> PredictRun:
    """Labels for `texts` from DOMAIN@REF, batched; through its ONNX export when it has one ('auto').

    `before_torch` runs just before the torch path imports transformers (the CLI quiets it there).
    """
    if backend not in BACKENDS:
        raise ExportError(f"Unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}.")
    if not texts:
        raise PredictInputError("No texts to predict; give TEXT arguments, '-' for stdin, or --file.")
    version = registry.resolve(ref)
    artifact = onnx_artifact(registry, version) if backend != "torch" and device == "cpu" else None
    if artifact is None and backend == "onnx":
        raise NoExportError(
            f"{version.ref} has no ONNX export; make one with: adapters export {version.ref} --format onnx --out DIR"
        )
    max_length = version_max_length(registry, version)
    if artifact is not None:
        model = OnnxClassifier(registry.artifact_path(artifact))
        logits = by_length(texts, batch_size, lambda chunk: model.logits(chunk, max_length, batch_size))
        log.info("predicted %d texts with %s through onnxruntime", len(texts), artifact.name)
        predictions = to_predictions(texts, logits, model.labels)
        return PredictRun(version.ref, "onnxruntime", f"{ONNX_KIND}/{artifact.name}", predictions)
    if before_torch is not None:
        before_torch()
    from loradock.adapters.loading import load_version

    loaded = load_version(registry, version.ref, device)
    logits = by_length(
        texts, batch_size, lambda chunk: torch_logits(loaded.model, loaded.tokenizer, chunk, max_length, batch_size)
    )
    return PredictRun(version.ref, "torch", "PEFT adapter", to_predictions(texts, logits, list(version.labels)))


def read_texts(path: Path | str, column: str | None = None) -> list[str]:
    """Texts from a file: one per line, or a CSV's `column` (default 'text') when it ends in .csv or a column is named."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv" or column:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                name = column or "text"
                if name not in (reader.fieldnames or []):
                    raise PredictInputError(
                        f"{str(path)!r} has no column {name!r} (columns: "
                        f"{', '.join(reader.fieldnames or []) or 'none'}); pass --column NAME."
                    )
                return [row[name] for row in reader if (row[name] or "").strip()]
        with path.open(encoding="utf-8") as fh:
            return read_lines(fh)
    except UnicodeDecodeError:
        raise PredictInputError(f"{str(path)!r} is not UTF-8 text; save it as UTF-8 and try again.") from None
    except csv.Error as exc:  # e.g. a field over csv's limit (128 KiB), or a NUL byte
        raise PredictInputError(
            f"{str(path)!r} is not a CSV file Python can read ({exc}); split long texts "
            "into rows, or pass a plain text file with one text per line."
        ) from None
