"""`adapters train` and `adapters eval` from the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Registry
from tests.train_support import LEARNS, gate_passes_fixture, one_thread_fixture, tiny_base_fixture, write_keyword_csv  # noqa: F401  (fixtures)

LEARNS_ARGS = [
    "--epochs",
    str(LEARNS["epochs"]),
    "--lr",
    str(LEARNS["lr"]),
    "--batch-size",
    str(LEARNS["batch_size"]),
    "--max-length",
    str(LEARNS["max_length"]),
]


@pytest.mark.usefixtures("gate_passes")
def test_train_then_eval_prints_the_same_report(tiny_base: str, tmp_path) -> None:
    runner = CliRunner()
    data = str(write_keyword_csv(tmp_path / "tickets.csv"))
    result = runner.invoke(
        cli,
        [
            "train",
            "tickets",
            "--data",
            data,
            "--base",
            tiny_base,
            *LEARNS_ARGS,
            "--alias",
            "staging",
            "--quiet",
            "--target-modules",
            "query,value",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "New domain 'tickets' with labels from the data: billing, shipping, technical" in result.output
    assert "confusion matrix (rows: true label, columns: predicted label)" in result.output
    assert "pred billing" in result.output and "true technical" in result.output
    assert "Registered tickets@1" in result.output and "staging" in result.output
    assert "Quality gate: passed" in result.output

    version = Registry().resolve("tickets@staging")
    eval_rows = Registry().artifact_path(Registry().find_artifact(version.ref, "data", "eval")) / "eval.jsonl"
    result = runner.invoke(cli, ["eval", "tickets@staging", "--data", str(eval_rows), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == pytest.approx(version.metrics["accuracy"])
    assert report["confusion_matrix"] == version.metrics["confusion_matrix"]

    result = runner.invoke(cli, ["eval", "tickets@1", "--data", "embedded:sentiment"], catch_exceptions=False)
    assert result.exit_code == 5 and "label(s) the domain does not know" in result.output


@pytest.mark.usefixtures("gate_passes")
def test_full_from_the_cli(tiny_base: str, tmp_path) -> None:
    data = str(write_keyword_csv(tmp_path / "tickets.csv"))
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "tickets",
            "--data",
            data,
            "--base",
            tiny_base,
            "--epochs",
            "1",
            "--max-length",
            "32",
            "--full",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ref"] is None and out["artifact"]["kind"] == "full-model"


@pytest.mark.slow
def test_train_sentiment_on_the_embedded_base_end_to_end() -> None:
    result = CliRunner().invoke(
        cli, ["train", "sentiment", "--epochs", "1", "--max-length", "32", "--quiet"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    version = Registry().resolve("sentiment@latest")
    assert version.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert version.peft_config["r"] == 8 and version.extra["trainable_pct"] < 0.5
    assert {a.kind for a in Registry().artifacts(version.ref)} == {"plot", "report", "data"}
    from loradock.adapters.training.evaluate import evaluate_version

    report = evaluate_version(Registry(), "sentiment@latest", "embedded:sentiment", device="cpu")
    assert report.size == 100


def test_loop_own_with_report_to_is_refused_with_the_fix(tmp_path) -> None:
    data = str(write_keyword_csv(tmp_path / "tickets.csv", rows_per_label=4))
    result = CliRunner().invoke(
        cli, ["train", "tickets", "--data", data, "--loop", "own", "--report-to", "tensorboard"]
    )
    assert result.exit_code == 5, result.output
    assert "--report-to tensorboard" in result.output and "--loop own" in result.output
    assert "--loop trainer" in result.output
    assert Registry().domains() == [] or "tickets" not in [d.name for d in Registry().domains()]
