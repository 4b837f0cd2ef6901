"""`loradock.load`: a registered version as a Python callable that returns labels and scores.

    import loradock
    classify = loradock.load("medical@production")
    classify("chest pain on exertion")              # -> Prediction(label=..., score=...)
    classify(["first note", "second note"])         # -> [Prediction, Prediction]

The version's PEFT adapter runs on the base it was trained on (the fingerprint is
checked); `backend="onnx"` runs the version's registered ONNX export through
onnxruntime instead (make one with `adapters export DOMAIN@REF --format onnx`).
Nothing is imported until `load` is called, so `import loradock` stays light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    import numpy as np

    from loradock.adapters.predict import Prediction
    from loradock.registry import AdapterVersion, Registry

log = logging.getLogger(__name__)

SDK_BACKENDS = ("torch", "onnx")


class Classifier:
    """One adapter version, loaded once: call it with a text or a list of texts."""

    def __init__(
        self,
        version: AdapterVersion,
        backend: str,
        source: str,
        logits_of: Callable[[list[str]], np.ndarray],
        labels: list[str],
        batch_size: int,
    ) -> None:
        self.version = version
        self.ref = version.ref
        self.labels = labels
        self.backend = backend  # "torch" (PEFT) or "onnx" (onnxruntime)
        self.source = source  # what runs: "PEFT adapter" or "onnx/<export name>"
        self._logits_of = logits_of
        self._batch_size = batch_size

    def __repr__(self) -> str:
        return f"<loradock.Classifier {self.ref} via {self.source} labels={self.labels}>"

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits, one row per text, in input order."""
        from loradock.adapters.predict import by_length

        items = list(texts)
        if not items:
            import numpy as np

            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return by_length(items, self._batch_size, self._logits_of)

    @overload
    def __call__(self, texts: str) -> Prediction: ...  # type: ignore[overload-overlap]  # str is a Sequence[str]; str is matched first, as at runtime

    @overload
    def __call__(self, texts: Sequence[str]) -> list[Prediction]: ...

    def __call__(self, texts: str | Sequence[str]) -> Prediction | list[Prediction]:
        """Label, score and logits for one text (a Prediction) or many (a list, in input order)."""
        from loradock.adapters.predict import to_predictions

        single = isinstance(texts, str)
        items: list[str] = [texts] if isinstance(texts, str) else list(texts)
        if not all(isinstance(t, str) for t in items):
            raise TypeError("loradock classifiers take a str or a list of str.")
        predictions = to_predictions(items, self.logits(items), self.labels)
        return predictions[0] if single else predictions


def load(
    ref: str,
    *,
    backend: str = "torch",
    home: str | Path | None = None,
    device: str = "cpu",
    base: str | None = None,
    batch_size: int = 32,
) -> Classifier:
    """`DOMAIN@REF` (e.g. "medical@production") from the registry as a callable classifier.

    `backend="onnx"` uses the version's ONNX export (an error names the export command
    when it has none); `home` overrides ADAPTERS_HOME; `base` a local copy of the base.
    """
    from loradock.adapters.errors import ExportError
    from loradock.registry import Registry

    if backend not in SDK_BACKENDS:
        raise ExportError(f"Unknown backend {backend!r}; use one of: {', '.join(SDK_BACKENDS)}.")
    with Registry(home) as registry:
        version = registry.resolve(ref)
        if backend == "onnx":
            return _onnx(registry, version, batch_size)
        return _torch(registry, version, device, base, batch_size)


def _onnx(registry: Registry, version: AdapterVersion, batch_size: int) -> Classifier:
    from loradock.adapters.errors import NoExportError
    from loradock.adapters.predict import OnnxClassifier, onnx_artifact, version_max_length

    artifact = onnx_artifact(registry, version)
    if artifact is None:
        raise NoExportError(
            f"{version.ref} has no ONNX export; make one with: adapters export {version.ref} --format onnx --out DIR"
        )
    model = OnnxClassifier(registry.artifact_path(artifact))
    max_length = version_max_length(registry, version)
    return Classifier(
        version,
        "onnx",
        f"onnx/{artifact.name}",
        lambda chunk: model.logits(chunk, max_length, batch_size),
        model.labels,
        batch_size,
    )


def _torch(registry: Registry, version: AdapterVersion, device: str, base: str | None, batch_size: int) -> Classifier:
    from loradock.adapters.base import pick_device
    from loradock.adapters.loading import load_version
    from loradock.adapters.predict import torch_logits, version_max_length

    loaded = load_version(registry, version.ref, pick_device(device), base=base)
    max_length = version_max_length(registry, version)
    log.info("loaded %s through PEFT on %s", version.ref, loaded.version.base_model)
    return Classifier(
        version,
        "torch",
        "PEFT adapter",
        lambda chunk: torch_logits(loaded.model, loaded.tokenizer, chunk, max_length, batch_size),
        list(version.labels),
        batch_size,
    )
