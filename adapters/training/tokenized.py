"""Tokenize once: token ids cached on disk by (tokenizer, data fingerprint, max length).

Rows are stored unpadded (one flat int32 array plus offsets) in an `.npz`
under `$ADAPTERS_HOME/cache/tokenized/`; padding happens per batch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def tokenizer_id(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of the tokenizer's files (or, without files, its class and vocabulary)."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    folder = Path(str(getattr(tokenizer, "name_or_path", "")))
    files = [folder / n for n in _TOKENIZER_FILES if (folder / n).is_file()] if folder.is_dir() else []
    if files:
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    else:
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    return digest.hexdigest()


def cache_key(tok_id: str, data_fingerprint: str, max_length: int) -> str:
    return hashlib.sha256(f"{tok_id}\0{data_fingerprint}\0{max_length}".encode()).hexdigest()[:32]


def _encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[np.ndarray]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]
    return [np.asarray(row, dtype=np.int32) for row in encoded]


def _save(path: Path, ids: list[np.ndarray]) -> None:
    offsets = np.cumsum([0] + [len(r) for r in ids]).astype(np.int64)
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
    _write_npz(path, flat=flat, offsets=offsets)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write to a temporary file, then rename: a crash never leaves half an entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.incomplete")
    try:
        with os.fdopen(fd, "wb") as fh:
            # A dict unpacked into savez could carry its `allow_pickle: bool` keyword, so mypy rejects a dict of
            # arrays; ours holds only array names (flat, offsets, counts).
            np.savez(fh, **cast(dict[str, Any], arrays))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> list[np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            flat, offsets = npz["flat"], npz["offsets"]
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is simply rebuilt
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    data_fingerprint: str,
    max_length: int,
    cache_dir: Path | None = None,
) -> list[np.ndarray]:
    """Unpadded token ids per text, from the cache when the same tokenizer saw the same data."""
    if cache_dir is None:
        return _encode(tokenizer, texts, max_length)
    path = cache_dir / "tokenized" / f"{cache_key(tokenizer_id(tokenizer), data_fingerprint, max_length)}.npz"
    if path.is_file():
        ids = _load(path)
        if ids is not None and len(ids) == len(texts):
            log.info("tokenized %d texts from cache %s", len(texts), path.name)
            return ids
    ids = _encode(tokenizer, texts, max_length)
    _save(path, ids)
    return ids


def token_counts(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    data_fingerprint: str,
    limit: int | None,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Tokens per text, special tokens included, counted up to `limit` (None: no limit); cached.

    Only counts are kept: the ids are tokenized again at the chosen max_length
    (truncation adds the closing special tokens, which slicing could not).
    """
    path = None
    if cache_dir is not None:
        key = cache_key(tokenizer_id(tokenizer), data_fingerprint, limit or 0)
        path = cache_dir / "tokenized" / f"counts-{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as npz:
                    counts = npz["counts"]
                if len(counts) == len(texts):
                    return counts
            except (OSError, ValueError, KeyError):
                pass  # rebuilt below
    encoded = tokenizer(list(texts), truncation=limit is not None, max_length=limit, padding=False)["input_ids"]
    counts = np.asarray([len(row) for row in encoded], dtype=np.int64)
    if path is not None:
        _write_npz(path, counts=counts)
    return counts
