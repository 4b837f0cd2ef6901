"""Best epoch and early stopping: the registered weights are the best epoch's, not the last one's."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from loradock.adapters.training import loop
from loradock.adapters.training.evaluate import compute_report
from loradock.adapters.training.options import TrainOptions
from loradock.adapters.training.train import train
from loradock.registry import Registry
from tests.train_support import gate_passes_fixture, one_thread_fixture, tiny_base_fixture  # noqa: F401  (fixtures)

FAST = {"max_length": 32, "batch_size": 16, "progress": False}


def scripted_eval(monkeypatch: pytest.MonkeyPatch, scores: list[float]) -> list[dict[str, Any]]:
    """Epoch k's eval reports macro-F1 scores[k]; returns the trainable weights seen at each eval."""
    seen: list[dict[str, Any]] = []

    def fake(model, ids, data, pad_id, device, batch_size=64):
        seen.append({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})
        report = compute_report(list(data.labels), list(data.labels), data.label_names, 0.5, data.source)
        score = scores[min(len(seen), len(scores)) - 1]
        return dataclasses.replace(report, macro_f1=score, accuracy=score, eval_loss=1.0 - score)

    monkeypatch.setattr(loop, "evaluate_model", fake)
    return seen


def _saved(path: Any) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def _plain(name: str) -> str:
    return name.replace(".default", "").replace("modules_to_save.", "")


@pytest.mark.usefixtures("gate_passes")
def test_a_run_whose_last_epoch_is_worse_registers_the_better_one(
    registry: Registry, tiny_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = scripted_eval(monkeypatch, [0.6, 0.9, 0.7])
    result = train(registry, "sentiment", TrainOptions(base=tiny_base, epochs=3, patience=0, **FAST))
    v = result.version
    assert v is not None
    assert [e["macro_f1"] for e in result.history["epochs"]] == [0.6, 0.9, 0.7]
    assert v.metrics["best_epoch"] == 2 and v.metrics["epochs_run"] == 3 and not v.metrics["stopped_early"]

    saved = _saved(registry.path(v.ref))
    best, last = seen[1], seen[2]
    for name, value in best.items():
        assert _plain(name) in saved, name
        assert saved[_plain(name)].equal(value), f"{name} is not epoch 2's"
    assert any(not saved[_plain(n)].equal(t) for n, t in last.items())  # and the last epoch did differ
    report = json.loads(
        (registry.artifact_path(registry.find_artifact(v.ref, "report", "metrics")) / "metrics.json").read_text()
    )
    assert [e["epoch"] for e in report["history"]["epochs"]] == [1, 2, 3]  # every epoch kept for the plots


@pytest.mark.usefixtures("gate_passes")
def test_early_stopping_after_patience_epochs_without_improvement(
    registry: Registry, tiny_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_eval(monkeypatch, [0.5, 0.8, 0.7, 0.6, 0.9, 0.95])
    result = train(registry, "sentiment", TrainOptions(base=tiny_base, epochs=6, patience=2, **FAST))
    assert result.history["best_epoch"] == 2
    assert len(result.history["epochs"]) == 4 and result.history["stopped_early"] is True
    assert result.version is not None and result.version.metrics["stopped_early"] is True


def test_patience_must_not_be_negative() -> None:
    from loradock.adapters.errors import TrainingOptionsError

    with pytest.raises(TrainingOptionsError, match="patience must be >= 0.*got -1"):
        TrainOptions(patience=-1)


@pytest.mark.slow  # the Trainer checkpoints every epoch: slow on a shared CPU
@pytest.mark.usefixtures("gate_passes")
def test_the_trainer_loop_also_registers_the_best_epoch(
    registry: Registry, tiny_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loradock.adapters.training import hf_loop

    scores = iter([0.6, 0.9, 0.7, 0.0])  # three epochs, then the final predict
    real_report, real_callback = hf_loop.compute_report, hf_loop.recorder
    seen: list[dict[str, Any]] = []

    def scripted(*args, **kwargs):
        score = next(scores)
        return dataclasses.replace(real_report(*args, **kwargs), macro_f1=score, accuracy=score)

    def recording(*args, **kwargs):
        recorder = real_callback(*args, **kwargs)
        on_evaluate = recorder.on_evaluate

        def snapshot(a, state, control, **kw):
            seen.append({n: p.detach().clone() for n, p in kw["model"].named_parameters() if p.requires_grad})
            return on_evaluate(a, state, control, **kw)

        recorder.on_evaluate = snapshot
        return recorder

    monkeypatch.setattr(hf_loop, "compute_report", scripted)
    monkeypatch.setattr(hf_loop, "recorder", recording)
    result = train(registry, "sentiment", TrainOptions(base=tiny_base, epochs=3, patience=0, loop="trainer", **FAST))
    assert result.version is not None and result.version.metrics["best_epoch"] == 2
    saved = _saved(registry.path(result.version.ref))
    for name, value in seen[1].items():
        assert saved[_plain(name)].equal(value), f"{name} is not epoch 2's"
    assert any(not saved[_plain(n)].equal(t) for n, t in seen[2].items())
