"""adapters predict: through PEFT and through onnxruntime, the two agree."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from tests.export_support import exported  # noqa: F401  (a fixture)

TEXTS = ["Absolutely loved it, a joy from start to finish.", "Boring, and far too long.", "meh"]


@pytest.mark.slow
def test_peft_and_onnx_predictions_agree(exported, monkeypatch):
    monkeypatch.setenv("ADAPTERS_HOME", str(exported.home))
    runner = CliRunner()
    peft = runner.invoke(cli, ["predict", exported.version.ref, *TEXTS, "--json"], catch_exceptions=False)
    onnx = runner.invoke(cli, ["predict", "--onnx", str(exported.fp32.out), *TEXTS, "--json"], catch_exceptions=False)
    assert peft.exit_code == 0 and onnx.exit_code == 0, peft.output + onnx.output
    a, b = json.loads(peft.stdout), json.loads(onnx.stdout)
    assert [p["text"] for p in a] == TEXTS and [p["label"] for p in a] == [p["label"] for p in b]
    assert all(abs(x["score"] - y["score"]) < 1e-4 for x, y in zip(a, b))
    assert {p["label"] for p in a} <= {"negative", "positive"}

    table = runner.invoke(cli, ["predict", "--onnx", str(exported.int8.out), TEXTS[0]], catch_exceptions=False)
    assert table.exit_code == 0 and a[0]["label"] in table.output and "score" in table.output


def test_predict_without_text_is_a_usage_error(registry):
    result = CliRunner().invoke(cli, ["predict", "sentiment@1"], catch_exceptions=False)
    assert result.exit_code == 2 and "at least one text" in result.output


def test_predict_on_a_folder_without_a_model_names_the_next_step(tmp_path):
    result = CliRunner().invoke(cli, ["predict", "--onnx", str(tmp_path), "hello"], catch_exceptions=False)
    assert result.exit_code == 1 and "model.onnx" in result.output and "adapters export" in result.output


def test_predict_unknown_version_is_a_clear_error(registry):
    result = CliRunner().invoke(cli, ["predict", "sentiment@9", "hello"], catch_exceptions=False)
    assert result.exit_code == 3 and "sentiment@9" in result.output


def test_predict_onnx_on_a_folder_that_is_no_export_is_one_clear_line(tmp_path) -> None:
    from click.testing import CliRunner

    from loradock.cli.main import cli

    folder = tmp_path / "not-an-export"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not a protobuf")
    (folder / "labels.json").write_text('{"id2label": {"0": "a", "1": "b"}}')
    result = CliRunner().invoke(cli, ["predict", "--onnx", str(folder), "hello"])
    assert result.exit_code == 1
    assert "is not a loadable export" in result.output and "adapters export" in result.output
    (folder / "labels.json").write_text('{"id2label": {"x": "a"}}')
    result = CliRunner().invoke(cli, ["predict", "--onnx", str(folder), "hello"])
    assert result.exit_code == 1 and "no valid id2label" in result.output
