"""adapters artifacts: list a version's artifacts with their paths, copy one out; show says where they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from tests.synthetic_adapters import write_adapter


def names(folder: Path) -> list[str]:
    """What a user sees in the folder (loradock may keep a hidden record of what it wrote)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def with_artifacts(registry, tmp_path: Path) -> str:
    """sentiment@1 holding what training, merge and export store (small stand-in files)."""
    version = registry.register("sentiment", write_adapter(tmp_path / "adapter"))
    src = tmp_path / "src"
    src.mkdir()
    for name in ("loss", "accuracy", "confusion"):
        (src / f"{name}.png").write_bytes(b"\x89PNG " + name.encode())
        registry.add_artifact(version.ref, "plot", name, {f"{name}.png": src / f"{name}.png"})
    (src / "metrics.json").write_text('{"accuracy": 0.9}')
    registry.add_artifact(version.ref, "report", "metrics", {"metrics.json": src / "metrics.json"})
    (src / "eval.jsonl").write_text('{"text": "ok", "label": "positive"}\n')
    registry.add_artifact(version.ref, "data", "eval", {"eval.jsonl": src / "eval.jsonl"})
    for name in ("fp32-opset17", "int8-opset17"):
        (src / name).mkdir()
        (src / name / "model.onnx").write_bytes(name.encode())
        (src / name / "labels.json").write_text('{"id2label": {"0": "negative", "1": "positive"}}')
        registry.add_artifact(version.ref, "onnx", name, {f: src / name / f for f in ("model.onnx", "labels.json")})
    return version.ref


def test_list_gives_a_path_that_holds_each_artifact(with_artifacts) -> None:
    rows = json.loads(run("artifacts", with_artifacts, "--json").output)
    by_name = {f"{r['kind']}/{r['name']}": r for r in rows}
    assert set(by_name) == {
        "plot/loss",
        "plot/accuracy",
        "plot/confusion",
        "report/metrics",
        "data/eval",
        "onnx/fp32-opset17",
        "onnx/int8-opset17",
    }
    assert Path(by_name["plot/loss"]["path"]).read_bytes() == b"\x89PNG loss"  # one file: the file itself
    assert (Path(by_name["onnx/int8-opset17"]["path"]) / "model.onnx").read_bytes() == b"int8-opset17"
    table = run("artifacts", "list", "sentiment").output  # bare domain: latest
    assert "plot/confusion" in table and by_name["plot/confusion"]["path"] in table


def test_show_prints_where_each_artifact_is(with_artifacts) -> None:
    shown = run("show", with_artifacts).output
    listed = json.loads(run("artifacts", with_artifacts, "--json").output)
    for row in listed:
        assert f"{row['kind']}/{row['name']} {row['path']}" in shown
    as_json = json.loads(run("show", with_artifacts, "--json").output)
    assert {a["path"] for a in as_json["artifacts"]} == {r["path"] for r in listed}


def test_get_copies_every_plot_into_out(with_artifacts, tmp_path) -> None:
    out = tmp_path / "plots"
    result = run("artifacts", "get", with_artifacts, "plots", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert names(out) == ["accuracy.png", "confusion.png", "loss.png"]
    assert (out / "confusion.png").read_bytes() == b"\x89PNG confusion"


@pytest.mark.parametrize(
    ("kind", "files"),
    [
        ("eval", ["eval.jsonl"]),
        ("report", ["metrics.json"]),
        ("plot/loss", ["loss.png"]),
        ("onnx/int8-opset17", ["labels.json", "model.onnx"]),
    ],
)
def test_get_one_kind(with_artifacts, tmp_path, kind, files) -> None:
    out = tmp_path / "out"
    got = json.loads(run("artifacts", "get", with_artifacts, kind, "--out", str(out), "--json").output)
    assert got["files"] == files and names(out) == files
    assert got["out"] == str(out)


def test_get_refuses_an_ambiguous_kind_and_a_missing_one(with_artifacts, tmp_path) -> None:
    out = tmp_path / "out"
    ambiguous = run("artifacts", "get", with_artifacts, "onnx", "--out", str(out))
    assert ambiguous.exit_code == 5 and "onnx/fp32-opset17, onnx/int8-opset17" in ambiguous.output
    missing = run("artifacts", "get", with_artifacts, "merged", "--out", str(out))
    assert missing.exit_code == 3 and "adapters merge sentiment@1 --out DIR" in missing.output
    assert not out.exists()


def test_get_keeps_an_existing_out_unless_overwrite(with_artifacts, tmp_path) -> None:
    out = tmp_path / "out"
    assert run("artifacts", "get", with_artifacts, "plots", "--out", str(out)).exit_code == 0
    refused = run("artifacts", "get", with_artifacts, "eval", "--out", str(out))
    assert refused.exit_code != 0 and "--overwrite" in refused.output and "loss.png" in names(out)
    assert run("artifacts", "get", with_artifacts, "eval", "--out", str(out), "--overwrite").exit_code == 0
    assert names(out) == ["eval.jsonl"]


def test_get_fills_an_existing_empty_folder(with_artifacts, tmp_path) -> None:
    out = tmp_path / "made-by-the-user"
    out.mkdir()
    result = run("artifacts", "get", with_artifacts, "plots", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert names(out) == ["accuracy.png", "confusion.png", "loss.png"]


def test_get_refuses_a_non_empty_folder_and_overwrite_keeps_foreign_files(with_artifacts, tmp_path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused = run("artifacts", "get", with_artifacts, "plots", "--out", str(out))
    assert refused.exit_code != 0 and "not empty" in refused.output and "--overwrite" in refused.output
    forced = run("artifacts", "get", with_artifacts, "plots", "--out", str(out), "--overwrite")
    assert forced.exit_code != 0 and "not written by loradock" in forced.output
    assert names(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".busy")) == []  # no staging left
