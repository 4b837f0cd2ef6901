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
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    source = resolve_base(DEFAULT_BASE)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture(scope="module", autouse=True, name="one_thread")
def one_thread_fixture():
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


KEYWORDS = {
    "billing": ("invoice", "refund", "charge"),
    "technical": ("crash", "error", "login"),
    "shipping": ("parcel", "delivery", "courier"),
    "negative": ("awful", "boring", "bad"),
    "positive": ("great", "wonderful", "good"),
}
LEARNS = {"epochs": 2, "lr": 3e-2, "batch_size": 4, "max_length": 32, "progress": False}


def write_keyword_csv(
    path: Path, rows_per_label: int = 20, labels: tuple[str, ...] = ("billing", "technical", "shipping"), seed: int = 0
) -> Path:
    """A CSV a tiny random BERT can learn in a few epochs: each label has its own words."""
    import csv
    import random

    rng = random.Random(seed)
    filler = ("please", "help", "today", "my", "the", "again", "still", "with")
    rows = []
    for label in labels:
        words = KEYWORDS.get(label, (label, label, label))
        for _ in range(rows_per_label):
            text = [rng.choice(words) for _ in range(3)] + [rng.choice(filler) for _ in range(3)]
            rng.shuffle(text)
            rows.append({"text": " ".join(text), "label": label})
    rng.shuffle(rows)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(name="gate_passes")
def gate_passes_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests about registration, not learning: the tiny random BERT rarely beats the majority
    class, so its versions are judged as passing (tests/*/test_gates_*.py test the real gate)."""
    from loradock.adapters.training import register

    real = register.check_gate

    def passing(*args, **kwargs):
        return {**real(*args, **kwargs), "passed": True, "reasons": []}

    monkeypatch.setattr(register, "check_gate", passing)
