"""Shared fixtures: every test gets its own home and never touches the network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ADAPTERS_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("ADAPTERS_DEBUG", raising=False)
    return home


@pytest.fixture
def registry(isolated_home: Path):
    from loradock.registry import Registry

    reg = Registry(isolated_home)
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def make_peft_folder(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build a real PEFT LoRA folder on the embedded MiniLM base.

    init_lora_weights=False makes B non-zero, so the adapter really changes
    the logits and identity checks mean something.
    """
    cache: dict[tuple, Path] = {}

    def build(labels: tuple[str, ...] = ("negative", "positive"), seed: int = 0, r: int = 8) -> Path:
        key = (labels, seed, r)
        if key not in cache:
            import torch
            from peft import LoraConfig, TaskType, get_peft_model

            from loradock.adapters.base import load_classifier
            from loradock.registry import DEFAULT_BASE

            torch.manual_seed(seed)
            model = load_classifier(DEFAULT_BASE, list(labels))
            config = LoraConfig(
                task_type=TaskType.SEQ_CLS,
                r=r,
                lora_alpha=32,
                lora_dropout=0.1,
                target_modules=["query", "value"],
                init_lora_weights=False,
            )
            folder = tmp_path_factory.mktemp(f"peft-{len(labels)}-{seed}-{r}")
            get_peft_model(model, config).save_pretrained(str(folder))
            cache[key] = folder
        return cache[key]

    return build
