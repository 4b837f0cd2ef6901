"""Synthetic inputs the benches build for themselves (and the tests reuse): a PEFT-layout
LoRA folder written with numpy, and a tiny random BERT base. They live here, not in
tests/, because bench/ sits on the top floor beside cli/ and never imports tests/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def write_adapter(
    folder: Path,
    *,
    labels: int = 2,
    r: int = 4,
    hidden: int = 8,
    layers: int = 2,
    seed: int = 0,
    poison: str | None = None,
    config_overrides: dict | None = None,
) -> Path:
    """A BERT-style LoRA adapter on query/value; `poison` = "nan" or "inf" breaks one tensor."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for i in range(layers):
        for module in ("query", "value"):
            prefix = f"base_model.model.bert.encoder.layer.{i}.attention.self.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((r, hidden)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((hidden, r)).astype(np.float32)
    tensors["base_model.model.classifier.weight"] = rng.standard_normal((labels, hidden)).astype(np.float32)
    tensors["base_model.model.classifier.bias"] = np.zeros(labels, dtype=np.float32)
    if poison:
        key = next(iter(tensors))
        tensors[key][0, 0] = np.nan if poison == "nan" else np.inf
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "SEQ_CLS",
        "r": r,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "target_modules": ["query", "value"],
        "modules_to_save": ["classifier", "score"],
        "base_model_name_or_path": "tiny-bert",
    }
    config.update(config_overrides or {})
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def tiny_base(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer, saved as a local base folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from loradock.adapters.base import resolve_base
    from loradock.registry import DEFAULT_BASE

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(str(folder))  # no head: each adapter brings its own
    AutoTokenizer.from_pretrained(str(resolve_base(DEFAULT_BASE))).save_pretrained(str(folder))
    return folder
