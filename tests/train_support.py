"""A tiny randomly initialised BERT with the embedded base's tokenizer, for fast training tests."""

from __future__ import annotations

import shutil
from pathlib import Path


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide BertModel and the MiniLM tokenizer files into `folder`."""
    import torch
    from transformers import BertConfig, BertModel

    from adapters.base import resolve_base
    from registry import DEFAULT_BASE

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
