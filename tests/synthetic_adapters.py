"""Tiny PEFT-layout LoRA folders written with numpy: for registry tests that need
the file format, not a real model (no torch import, milliseconds each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file


def write_adapter(
    folder: Path, *, labels: int = 2, r: int = 4, hidden: int = 8, layers: int = 2, seed: int = 0,
    poison: str | None = None, config_overrides: dict | None = None,
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
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": r, "lora_alpha": 16, "lora_dropout": 0.1,
        "target_modules": ["query", "value"], "modules_to_save": ["classifier", "score"],
        "base_model_name_or_path": "tiny-bert",
    }
    config.update(config_overrides or {})
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder
