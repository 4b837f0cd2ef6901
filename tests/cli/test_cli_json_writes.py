"""--json on every command that changes something: one JSON document on stdout, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from tests.export_support import exported  # noqa: F401  (a fixture)


def run_json(*args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_registry_writes_print_json(registry, make_peft_folder) -> None:
    folder = make_peft_folder()
    added = run_json("domains", "add", "tickets", "--labels", "billing,bug")
    assert added["name"] == "tickets" and added["labels"] == ["billing", "bug"]

    first = run_json("register", "sentiment", str(folder), "--alias", "staging")
    assert first["ref"] == "sentiment@1" and first["reused"] is False and "staging" in first["aliases"]
    second = run_json("register", "sentiment", str(make_peft_folder(seed=1)))
    assert second["ref"] == "sentiment@2" and second["sha256"] != first["sha256"]

    moved = run_json("alias", "set", "sentiment", "production", "1")
    assert moved == {
        "domain": "sentiment",
        "alias": "production",
        "ref": "sentiment@1",
        "number": 1,
        "sha256": first["sha256"],
    }
    assert registry.resolve("sentiment@production").number == 1
    assert run_json("alias", "rm", "sentiment", "staging") == {
        "domain": "sentiment",
        "alias": "staging",
        "removed": True,
    }

    removed = run_json("rm", "sentiment@2")
    assert removed["ref"] == "sentiment@2" and removed["removed"] is True
    assert [v.ref for v in registry.versions("sentiment")] == ["sentiment@1"]

    dry = run_json("gc", "--dry-run")
    assert dry["dry_run"] is True and dry["removed"]  # sentiment@2's weights
    done = run_json("gc")
    assert sorted(done["removed"]) == sorted(dry["removed"]) and done["freed_bytes"] > 0
    assert run_json("gc", "--dry-run")["removed"] == []


@pytest.mark.slow
def test_merge_and_export_print_json(exported, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ADAPTERS_HOME", str(exported.home))
    ref = exported.version.ref
    merged = run_json("merge", ref, "--out", str(tmp_path / "merged"))
    assert merged["artifact"] == "merged/fp32" and merged["reused"] is True
    assert merged["out"] == str(tmp_path / "merged") and (tmp_path / "merged" / "config.json").is_file()
    # Any drop allowed: the registered int8 is reused, and what real int8 scores differs by CPU.
    onnx = run_json("export", ref, "--quantize", "int8", "--max-accuracy-drop", "100", "--out", str(tmp_path / "onnx"))
    assert onnx["artifact"] == "onnx/int8-opset17" and onnx["report"]["quantize"] == "int8"
    assert (tmp_path / "onnx" / "model.onnx").is_file()
