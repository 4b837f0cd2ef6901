"""Ctrl-C registers nothing; --resume continues from the last epoch checkpoint to the same result."""

from __future__ import annotations

from pathlib import Path

import pytest

from loradock.adapters.errors import TrainingInterrupted
from loradock.adapters.training import loop
from loradock.adapters.training.options import TrainOptions
from loradock.adapters.training.train import train
from loradock.registry import Registry
from tests.train_support import one_thread_fixture, tiny_base_fixture  # noqa: F401  (fixtures)

STEPS_PER_EPOCH = 5  # 80 sentiment training rows, batch 16


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    real = loop._step
    calls = {"n": 0}

    def step_then_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_step", step_then_stop)


def test_interrupt_registers_nothing_and_resume_matches_an_uninterrupted_run(
    tmp_path: Path, tiny_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"base": tiny_base, "epochs": 2, "max_length": 32, "progress": False, "seed": 5}
    with Registry(tmp_path / "reference") as reg:
        reference = train(reg, "sentiment", TrainOptions(**options)).version
    assert reference is not None

    with Registry(tmp_path / "home") as reg:
        before = reg.last_event_id()
        _interrupt_at(monkeypatch, STEPS_PER_EPOCH + 2)  # in the middle of epoch 2
        with pytest.raises(TrainingInterrupted, match="nothing was registered.*epoch 1.*--resume"):
            train(reg, "sentiment", TrainOptions(**options))
        assert reg.last_event_id() == before
        assert reg.versions() == []
        assert list((reg.home / "runs").glob("sentiment-*/epoch-1"))

        monkeypatch.undo()
        resumed = train(reg, "sentiment", TrainOptions(**options, resume=True, alias="staging"))
        assert resumed.version is not None and resumed.version.ref == "sentiment@1"
        assert resumed.version.sha256 == reference.sha256  # identical weights
        assert len(resumed.history["epochs"]) == 2
        assert not list((reg.home / "runs").glob("sentiment-*"))  # the finished run is cleaned up


def test_interrupt_in_the_first_epoch_says_there_is_no_checkpoint(
    registry: Registry, tiny_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(TrainingInterrupted, match="no checkpoint"):
        train(registry, "sentiment", TrainOptions(base=tiny_base, epochs=1, max_length=32, progress=False))
    assert registry.versions() == []


def test_cli_interrupt_message(tiny_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from loradock.cli.main import cli

    _interrupt_at(monkeypatch, 1)
    result = CliRunner().invoke(
        cli,
        ["train", "sentiment", "--base", tiny_base, "--epochs", "1", "--max-length", "32", "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert "interrupted; nothing was registered" in result.output
