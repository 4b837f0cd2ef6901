"""adapters merge/export refuse bad inputs with one clear line and leave nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.adapters.errors import BaseModelError, ExportError
from loradock.cli.main import cli
from loradock.registry import DEFAULT_BASE, PRESETS, VersionInfo
from tests.export_support import leftovers, register_version


@pytest.fixture
def version(registry, make_peft_folder):
    return register_version(registry, make_peft_folder(labels=PRESETS["sentiment"].labels), eval_data=False)


@pytest.mark.parametrize("command", [["merge"], ["export", "--format", "onnx"]])
def test_unknown_version_is_a_clear_error(registry, tmp_path, command):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [*command, "sentiment@7", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 3  # not found
    assert "sentiment@7" in result.output and "Traceback" not in result.output
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [["merge"], ["export", "--quantize", "int8"]])
def test_existing_output_is_refused_without_overwrite(version, tmp_path, command):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, [*command, version.ref, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 1 and "already exists" in result.output and "--overwrite" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert leftovers(tmp_path) == []


def test_a_base_that_cannot_be_found_is_a_clear_error(registry, make_peft_folder, tmp_path):
    from loradock.adapters.export.merge import merge_version

    info = VersionInfo(base_model="no-such-org/no-such-model")
    version = register_version(
        registry, make_peft_folder(labels=PRESETS["sentiment"].labels), info=info, eval_data=False
    )
    out = tmp_path / "new" / "deeper" / "merged"
    with pytest.raises(BaseModelError, match="no-such-org/no-such-model"):
        merge_version(registry, version.ref, out)
    assert not (tmp_path / "new").exists()  # even the parent folders made for it are gone
    assert registry.artifacts(version.ref, "merged") == []


def test_an_unsupported_task_type_is_refused(registry, make_peft_folder, tmp_path):
    from loradock.adapters.export.onnx_export import export_onnx

    folder = tmp_path / "token-cls"
    shutil.copytree(make_peft_folder(labels=PRESETS["sentiment"].labels), folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "task_type": "TOKEN_CLS"}))
    version = registry.register("sentiment", folder, VersionInfo(base_model=DEFAULT_BASE))
    with pytest.raises(ExportError, match=r"TOKEN_CLS.*text-classification \(SEQ_CLS\)"):
        export_onnx(registry, version.ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options,message",
    [
        ({"fmt": "tflite"}, "Unsupported export format 'tflite'"),
        ({"quantize": "int4"}, "Unsupported quantization 'int4'"),
        ({"opset": 9}, "Unsupported ONNX opset 9"),
        ({"exporter": "optimum"}, "Unknown exporter 'optimum'"),
    ],
)
def test_bad_export_options_are_refused_before_any_work(version, registry, tmp_path, options, message):
    from loradock.adapters.export.onnx_export import export_onnx

    with pytest.raises(ExportError, match=message):
        export_onnx(registry, version.ref, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_a_file_is_refused(version, tmp_path):
    target = tmp_path / "file.onnx"
    target.write_text("not a folder")
    result = CliRunner().invoke(
        cli, ["merge", version.ref, "--out", str(target), "--overwrite"], catch_exceptions=False
    )
    assert result.exit_code == 1 and "is a file" in result.output and target.read_text() == "not a folder"


def test_staging_cleans_up_when_the_work_fails(tmp_path: Path):
    from loradock.adapters.outdir import staged_output

    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), staged_output(out) as tmp:
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()
