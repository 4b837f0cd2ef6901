"""A tiny randomly initialised BERT with the embedded base's tokenizer, for fast training tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide BertModel and the MiniLM tokenizer files into `folder`."""
    import torch
    from transformers import BertConfig, BertModel

    from loradock.adapters.base import resolve_base
    from loradock.registry import DEFAULT_BASE

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    source = resolve_base(DEFAULT_BASE)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture(scope="module", autouse=True, name="one_thread")
def one_thread_fixture():  # type: ignore[no-untyped-def]
    """Tiny models run fastest on one thread, and the CI's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", name="tiny_base")
def tiny_base_fixture(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny BERT folder, usable as `--base`."""
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))
