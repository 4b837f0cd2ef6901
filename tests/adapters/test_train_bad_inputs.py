"""Bad training inputs fail with a clear error before any model loads, and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.adapters.errors import (
    AdaptersError,
    DataError,
    NoCheckpointError,
    TrainingOptionsError,
)
from loradock.adapters.training import model, prepare
from loradock.adapters.training.options import TrainOptions
from loradock.adapters.training.train import train
from loradock.registry import Registry
from loradock.registry.errors import UnknownDomainError


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case here must fail before a model or tokenizer is loaded."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded although the inputs are bad")

    monkeypatch.setattr(model, "load_classifier", refuse)
    monkeypatch.setattr(prepare, "load_tokenizer", refuse)


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"lr": -1e-3}, "lr must be > 0"),
        ({"r": 0}, "r must be >= 1, got 0"),
        ({"alpha": 0}, "alpha must be > 0"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\), got 1.5"),
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"max_length": 4}, r"max_length must be in \[8, 8192\], got 4"),
        ({"target_modules": ()}, "target_modules must name at least one module"),
        ({"eval_fraction": 1.0}, r"eval_fraction must be in \(0, 1\), got 1.0"),
        ({"eval_fraction": 0.2, "eval_data": "x.jsonl"}, "either --eval-data or --eval-fraction"),
        ({"alias": "latest"}, "'latest' moves by itself"),
        ({"alias": "bad alias"}, "Invalid alias 'bad alias'"),
        ({"alias": "7"}, "all-digit alias"),
        ({"device": "tpu"}, "Unknown device 'tpu'"),
    ],
)
def test_bad_hyperparameters_are_refused_at_construction(options: dict, message: str) -> None:
    with pytest.raises(TrainingOptionsError, match=message):
        TrainOptions(**options)


def test_target_modules_from_a_comma_string() -> None:
    assert TrainOptions(target_modules="query, value").target_modules == ("query", "value")


def test_unknown_domain(registry: Registry) -> None:
    with pytest.raises(UnknownDomainError, match="Unknown domain 'legal'.*adapters domains add legal"):
        train(registry, "legal", TrainOptions())


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        (
            [{"text": "a", "label": "positive"}, {"text": "b", "label": "great"}],
            {},
            r"1 label\(s\) the domain does not know: 'great' \(1 rows\).*domains edit DOMAIN --labels negative,positive,great",
        ),
        ([], {}, "holds no rows"),
        ([{"body": "a", "label": "positive"}], {}, r"no column 'text'.*--text-column"),
        ([{"text": "a", "label": "positive"}], {"label_column": "y"}, r"no column 'y'.*--label-column"),
        ([{"text": f"t{i}", "label": "positive"} for i in range(10)], {}, "only label 'positive'"),
    ],
)
def test_bad_data_is_refused_before_training(
    registry: Registry, tmp_path: Path, rows: list, kwargs: dict, message: str
) -> None:
    data = _jsonl(tmp_path / "d.jsonl", rows)
    before = registry.last_event_id()
    with pytest.raises(DataError, match=message):
        train(registry, "sentiment", TrainOptions(data=data, **kwargs))
    assert registry.last_event_id() == before
    assert registry.versions() == []


def test_bad_eval_data_is_refused_before_training(registry: Registry, tmp_path: Path) -> None:
    held = _jsonl(tmp_path / "e.jsonl", [{"text": "a", "label": "neutral"}])
    with pytest.raises(DataError, match="'neutral'"):
        train(registry, "sentiment", TrainOptions(eval_data=held))


def test_missing_base_model_is_refused_before_training(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(AdaptersError, match="cannot be found"):
        train(registry, "sentiment", TrainOptions(base="nobody/no-such-model"))


def test_resume_without_a_checkpoint(registry: Registry) -> None:
    with pytest.raises(NoCheckpointError, match="No interrupted run of 'sentiment'.*without --resume"):
        train(registry, "sentiment", TrainOptions(resume=True))


def test_cli_reports_bad_inputs_in_one_line(tmp_path: Path) -> None:
    from loradock.cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["train", "legal"], catch_exceptions=False)
    assert result.exit_code == 3 and "Unknown domain 'legal'" in result.output
    result = runner.invoke(cli, ["train", "sentiment", "--lr", "-1"], catch_exceptions=False)
    assert result.exit_code == 5 and "lr must be > 0, got -1.0" in result.output
    data = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "happy"}])
    result = runner.invoke(cli, ["train", "sentiment", "--data", data], catch_exceptions=False)
    assert result.exit_code == 5 and "'happy'" in result.output
    assert "Traceback" not in result.output


def test_max_length_beyond_the_base_positions(registry: Registry) -> None:
    with pytest.raises(TrainingOptionsError, match="max_length 1024 exceeds.*512 positions.*--max-length 512"):
        train(registry, "sentiment", TrainOptions(max_length=1024))
