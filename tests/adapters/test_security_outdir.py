"""--overwrite replaces only a previous output of loradock (issue 10, finding 4)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.adapters.errors import ExportError
from loradock.adapters.outdir import MARKER, staged_output
from loradock.cli.main import cli
from tests.synthetic_adapters import write_adapter


def _write(out: Path, overwrite: bool = False, name: str = "model.bin") -> None:
    with staged_output(out, overwrite) as tmp:
        (tmp / name).write_bytes(b"weights")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "config.json").write_text("{}")


def test_overwrite_refuses_a_folder_holding_other_files(tmp_path):
    cwd = tmp_path / "project"
    (cwd / "src").mkdir(parents=True)
    (cwd / "notes.txt").write_text("mine")
    (cwd / "src" / "main.py").write_text("print()")
    with pytest.raises(ExportError, match=r"was not written by loradock"):
        _write(cwd, overwrite=True)
    assert (cwd / "notes.txt").read_text() == "mine" and (cwd / "src" / "main.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]  # no staging folder left behind


def test_overwrite_replaces_a_previous_output_but_not_one_with_files_added(tmp_path):
    out = tmp_path / "merged"
    _write(out)
    assert (out / MARKER).is_file()
    _write(out, overwrite=True, name="model2.bin")  # our own output: replaced
    assert (out / "model2.bin").is_file() and not (out / "model.bin").exists()
    (out / "notes.txt").write_text("added later by the user")
    with pytest.raises(ExportError, match=r"holds files loradock did not write \(notes\.txt\)"):
        _write(out, overwrite=True)
    assert (out / "notes.txt").is_file()


def test_an_empty_folder_may_be_overwritten(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    _write(out, overwrite=True)
    assert (out / "model.bin").is_file()


@pytest.mark.parametrize("where", ["home", "parent"])
def test_never_the_registry_home_or_a_folder_above_it(tmp_path, isolated_home, where):
    from loradock.registry import Registry

    Registry(isolated_home).close()
    out = isolated_home if where == "home" else isolated_home.parent
    with pytest.raises(ExportError, match="registry home"):
        _write(out, overwrite=True)
    assert (isolated_home / "registry.db").is_file()


def test_outputs_keep_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "perm"
        _write(out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_cli_merge_overwrite_into_the_current_folder_deletes_nothing(registry, tmp_path, monkeypatch):
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["merge", "sentiment@1", "--out", ".", "--overwrite"], catch_exceptions=False)
    assert result.exit_code != 0 and "was not written by loradock" in result.output
    assert (work / "notes.txt").read_text() == "mine" and (work / "src").is_dir()
