"""Helpers for the multi-adapter ONNX tests: a tiny random BERT base and real PEFT adapters on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.fixtures import tiny_base

__all__ = ["TEXTS", "peft_alone", "peft_folder", "tiny_base"]

TEXTS = [
    "Crushing chest pain radiating to the left arm since this morning.",
    "Solve for x.",
    "A warm, funny and moving film; I loved every minute of it, and so did the kids.",
    "itchy rash",
    "The treaty ended the war in 1648 and redrew the map of Europe for a century.",
    "Dull.",
    "Shortness of breath and wheezing at night, worse after exercise and cold air.",
]


def peft_folder(
    base: str,
    out: Path,
    labels: Sequence[str],
    r: int,
    seed: int,
    targets: Sequence[str] = ("query", "value"),
    alpha: int = 16,
) -> Path:
    """A real PEFT LoRA (non-zero B, random head) on `base`, saved with save_pretrained."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from loradock.adapters.base import load_classifier

    torch.manual_seed(seed)
    model = load_classifier(base, list(labels))
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False
    )
    peft = get_peft_model(model, config)
    with torch.no_grad():  # a head that really differs between adapters
        for name, param in peft.named_parameters():
            if "classifier" in name:
                param.normal_(0, 0.5)
    peft.save_pretrained(str(out))
    return out


def peft_alone(base: str, folder: Path, labels: Sequence[str], text: str, max_length: int = 128) -> np.ndarray:
    """Logits of one text run alone through plain PEFT on `base`."""
    import torch
    from peft import PeftModel

    from loradock.adapters.base import load_classifier, load_tokenizer

    model = PeftModel.from_pretrained(load_classifier(base, list(labels)), str(folder)).eval()
    enc = load_tokenizer(base)([text], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits[0].numpy()
