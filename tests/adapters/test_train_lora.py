"""Training on a tiny BERT: registration contract, determinism, artifacts, full fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loradock.adapters.training.options import TrainOptions
from loradock.adapters.training.register import FULL_MODEL_KIND
from loradock.adapters.training.train import train
from loradock.registry import Registry
from tests.train_support import gate_passes_fixture, one_thread_fixture, tiny_base_fixture  # noqa: F401  (fixtures)

FAST = {"epochs": 1, "max_length": 32, "batch_size": 16, "progress": False}


@pytest.mark.usefixtures("gate_passes")
def test_train_registers_a_version_with_the_full_metadata_contract(registry: Registry, tiny_base: str) -> None:
    result = train(registry, "sentiment", TrainOptions(base=tiny_base, alias="staging", description="first", **FAST))
    v = result.version
    assert v is not None and v.ref == "sentiment@1"
    assert set(v.aliases) == {"latest", "staging"}
    assert v.description == "first"
    assert {"source", "fingerprint", "train_size", "eval_size", "text_column", "label_column"} <= set(v.data)
    assert v.data["source"] == "embedded:sentiment" and v.data["train_size"] == 80 and v.data["eval_size"] == 20
    assert {
        "accuracy",
        "macro_f1",
        "eval_loss",
        "per_class",
        "confusion_matrix",
        "train_loss",
        "best_epoch",
        "train_time_s",
        "samples_per_s",
        "epochs_run",
    } <= set(v.metrics)
    assert v.metrics["samples_per_s"] > 0 and v.metrics["epochs_run"] == 1 and v.metrics["best_epoch"] == 1
    assert v.gate["passed"] is True and v.gate["baseline"]["accuracy"] == 0.5
    assert set(v.metrics["per_class"]) == {"negative", "positive"}
    assert set(v.metrics["per_class"]["positive"]) == {"precision", "recall", "f1", "support"}
    assert sum(map(sum, v.metrics["confusion_matrix"])) == 20
    for key in ("r", "alpha", "dropout", "target_modules", "lr", "batch_size", "epochs", "max_length", "seed"):
        assert key in v.train_args
    # 80 training rows, 2 classes: the recipe from the data (adapters/training/recipe.py) picks 3e-3.
    assert v.train_args["max_length"] == 32 and v.train_args["lr"] == 3e-3 and v.train_args["epochs"] == 1
    assert v.train_args["recipe_rule"]["rows"] == 80
    assert {
        "trainable_params",
        "total_params",
        "trainable_pct",
        "wall_time_s",
        "device",
        "samples_per_s",
        "libraries",
    } <= set(v.extra)
    assert 0 < v.extra["trainable_pct"] < 100 and v.extra["device"] == "cpu"
    assert {"torch", "transformers", "peft"} <= set(v.extra["libraries"])
    assert v.base_fingerprint and v.base_fingerprint.startswith("sha256:")

    kinds = {(a.kind, a.name): a for a in registry.artifacts(v.ref)}
    assert set(kinds) == {
        ("plot", "loss"),
        ("plot", "accuracy"),
        ("plot", "confusion"),
        ("report", "metrics"),
        ("data", "eval"),
    }
    for name in ("loss", "accuracy", "confusion"):
        png = registry.artifact_path(kinds[("plot", name)]) / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [
        json.loads(x) for x in (registry.artifact_path(kinds[("data", "eval")]) / "eval.jsonl").read_text().splitlines()
    ]
    assert (
        len(rows) == 20 and set(rows[0]) == {"text", "label"} and {r["label"] for r in rows} == {"negative", "positive"}
    )
    report = json.loads((registry.artifact_path(kinds[("report", "metrics")]) / "metrics.json").read_text())
    assert report["metrics"]["accuracy"] == v.metrics["accuracy"]
    assert len(report["history"]["epochs"]) == 1

    second = train(registry, "sentiment", TrainOptions(base=tiny_base, seed=1, **FAST)).version
    assert second is not None and second.ref == "sentiment@2"
    assert registry.resolve("sentiment@latest").number == 2
    assert registry.resolve("sentiment@staging").number == 1  # only the named alias moves


def test_same_seed_same_adapter_other_seed_other_adapter(tmp_path: Path, tiny_base: str) -> None:
    shas = []
    for home, seed in (("a", 3), ("b", 3), ("c", 4)):
        with Registry(tmp_path / home) as reg:
            version = train(reg, "sentiment", TrainOptions(base=tiny_base, seed=seed, **FAST)).version
            assert version is not None
            shas.append(version.sha256)
    assert shas[0] == shas[1] != shas[2]


def test_tokenization_is_cached_and_reused(registry: Registry, tiny_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from loradock.adapters.training import tokenized

    train(registry, "sentiment", TrainOptions(base=tiny_base, **FAST))
    cached = sorted((registry.home / "cache" / "tokenized").glob("*.npz"))
    assert len(cached) == 2  # train split and eval split

    def refuse(*args, **kwargs):
        raise AssertionError("tokenized again although the cache holds it")

    monkeypatch.setattr(tokenized, "_encode", refuse)
    train(registry, "sentiment", TrainOptions(base=tiny_base, **{**FAST, "lr": 1e-4}))  # other lr, same tokens
    with pytest.raises(AssertionError):
        train(registry, "sentiment", TrainOptions(base=tiny_base, **{**FAST, "max_length": 16}))


def test_own_data_file_and_eval_file(registry: Registry, tiny_base: str, tmp_path: Path) -> None:
    rows = [
        {"body": f"great thing {i}" if i % 2 else f"awful thing {i}", "y": "positive" if i % 2 else "negative"}
        for i in range(24)
    ]
    data = tmp_path / "train.csv"
    data.write_text("body,y\n" + "".join(f"{r['body']},{r['y']}\n" for r in rows))
    held = tmp_path / "eval.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    v = train(
        registry,
        "sentiment",
        TrainOptions(base=tiny_base, data=str(data), eval_data=str(held), text_column="body", label_column="y", **FAST),
    ).version
    assert v is not None
    assert v.data["train_size"] == 24 and v.data["eval_size"] == 6 and v.data["text_column"] == "body"


def test_full_finetuning_is_a_domain_artifact_not_a_version(registry: Registry, tiny_base: str) -> None:
    result = train(registry, "sentiment", TrainOptions(base=tiny_base, full=True, **FAST))
    assert result.version is None and result.artifact is not None
    assert registry.versions("sentiment") == []
    found = registry.domain_artifacts("sentiment", FULL_MODEL_KIND)
    assert [a.name for a in found] == ["full-1"]
    meta = found[0].meta
    assert meta["train_args"]["full"] is True and meta["train_args"]["lr"] == 5e-5
    assert meta["extra"]["trainable_pct"] == pytest.approx(100.0)
    assert {"model.safetensors", "config.json", "loss.png", "metrics.json", "eval.jsonl"} <= set(found[0].files)


def test_target_modules_the_base_lacks(registry: Registry, tiny_base: str) -> None:
    from loradock.adapters.errors import TrainingOptionsError

    with pytest.raises(TrainingOptionsError, match="Cannot attach LoRA.*q_proj"):
        train(registry, "sentiment", TrainOptions(base=tiny_base, target_modules=("q_proj",), **FAST))
    assert registry.versions() == []


@pytest.mark.usefixtures("gate_passes")
def test_failed_registration_leaves_the_alias_where_it_was(
    registry: Registry, tiny_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    train(registry, "sentiment", TrainOptions(base=tiny_base, alias="production", **FAST))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(registry, "add_artifact", broken)
    with pytest.raises(OSError):
        train(registry, "sentiment", TrainOptions(base=tiny_base, alias="production", seed=1, **FAST))
    assert registry.resolve("sentiment@production").number == 1
    assert [v.ref for v in registry.versions("sentiment")] == ["sentiment@1"]
