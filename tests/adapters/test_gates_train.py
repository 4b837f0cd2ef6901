"""A trained version that cannot beat the majority class is registered, marked failed, and promoted nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Registry
from loradock.registry.gates import QualityGate
from tests.synthetic_adapters import write_adapter
from tests.train_support import one_thread_fixture, tiny_base_fixture  # noqa: F401  (fixtures)


def unlearnable(path: Path, rows: int = 20) -> str:
    """Every row has the same text: no model can do better than predicting one class."""
    path.write_text(
        "".join(
            json.dumps({"text": "the same words", "label": ("negative", "positive")[i % 2]}) + "\n" for i in range(rows)
        )
    )
    return str(path)


def test_failed_version_is_kept_marked_and_never_promoted(registry: Registry, tiny_base: str, tmp_path: Path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "good"), aliases=["production"])
    registry.update_domain("sentiment", gate=QualityGate(min_accuracy=0.9))
    runner = CliRunner()
    args = [
        "train",
        "sentiment",
        "--data",
        unlearnable(tmp_path / "d.jsonl"),
        "--base",
        tiny_base,
        "--epochs",
        "1",
        "--max-length",
        "16",
        "--alias",
        "production",
        "--quiet",
    ]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 6, result.output
    assert "Quality gate: FAILED - does not beat the majority-class baseline" in result.output
    assert "accuracy 0.5000 < 0.9" in result.output  # the domain's gate, too
    assert "sentiment@production did not move" in result.output

    reg = Registry(registry.home)
    failed = reg.resolve("sentiment@2")
    assert failed.failed and failed.gate["baseline"]["accuracy"] == 0.5
    assert {a.kind for a in reg.artifacts("sentiment@2")} >= {"plot", "report"}  # the plots explain why
    assert reg.resolve("sentiment@production").number == 1
    assert reg.resolve("sentiment@latest").number == 1

    listing = runner.invoke(cli, ["list", "sentiment"], catch_exceptions=False).output
    rows = {line.split()[0]: line for line in listing.splitlines() if line.startswith("sentiment@")}
    assert "FAILED" in rows["sentiment@2"] and "FAILED" not in rows["sentiment@1"]
    assert "gate" in runner.invoke(cli, ["show", "sentiment@2"], catch_exceptions=False).output

    refused = runner.invoke(cli, ["alias", "set", "sentiment", "production", "2"], catch_exceptions=False)
    assert refused.exit_code == 6 and "--force" in refused.output
    assert Registry(registry.home).resolve("sentiment@production").number == 1
    forced = runner.invoke(cli, ["alias", "set", "sentiment", "production", "2", "--force"], catch_exceptions=False)
    assert forced.exit_code == 0 and Registry(registry.home).resolve("sentiment@production").number == 2


def test_train_json_reports_the_gate_and_force_moves_the_alias(
    registry: Registry, tiny_base: str, tmp_path: Path
) -> None:
    args = [
        "train",
        "sentiment",
        "--data",
        unlearnable(tmp_path / "d.jsonl"),
        "--base",
        tiny_base,
        "--epochs",
        "1",
        "--max-length",
        "16",
        "--alias",
        "staging",
        "--force",
        "--json",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 6
    out = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert out["failed"] is True and out["gate"]["passed"] is False and "staging" in out["aliases"]


def test_run_thresholds_override_the_domains(registry: Registry, tiny_base: str, tmp_path: Path) -> None:
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train

    registry.update_domain("sentiment", gate=QualityGate(min_accuracy=0.9, min_macro_f1=0.1))
    result = train(
        registry,
        "sentiment",
        TrainOptions(
            data=unlearnable(tmp_path / "d.jsonl"),
            base=tiny_base,
            epochs=1,
            max_length=16,
            progress=False,
            min_accuracy=0.2,
        ),
    )
    assert result.gate["min_accuracy"] == 0.2 and result.gate["min_macro_f1"] == 0.1
    assert len(result.gate["reasons"]) == 1  # only the baseline: 0.5 >= 0.2 and macro-F1 0.33 >= 0.1
    with pytest.raises(Exception, match="min_accuracy must be between 0 and 1"):
        TrainOptions(min_accuracy=2.0)
