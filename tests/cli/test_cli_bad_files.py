"""Bad files give one line naming the value and the next step, never a traceback, and change nothing (issue 22.6)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from loradock.cli.main import cli
from loradock.registry import InvalidAdapterError, Registry
from tests.synthetic_adapters import write_adapter

pytest_plugins = ["tests.hub_server"]  # the fake Hub, for pull

DEEP = "[" * 200_000


def run(*args: str, **env: str) -> Result:
    # catch_exceptions=True on purpose: an escaping exception must show up as a failure below, not abort.
    return CliRunner(env=env or None).invoke(cli, list(args))


def one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def _digest(folder: Path) -> dict[str, str]:
    """Every stored file's hash (SQLite's shared-memory index changes on any read, so not that one)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


def test_a_deeply_nested_adapter_config_is_refused_by_register(registry, tmp_path) -> None:
    folder = write_adapter(tmp_path / "deep")
    (folder / "adapter_config.json").write_text(DEEP)
    before = _digest(registry.home)
    one_line_error(
        run("register", "sentiment", str(folder)), 5, "adapter_config.json", "nested too deeply", "save_pretrained"
    )
    with pytest.raises(InvalidAdapterError, match="nested too deeply"):
        registry.register("sentiment", folder)
    assert registry.versions() == [] and _digest(registry.home) == before


def test_a_deeply_nested_adapter_config_is_refused_by_pull(hub, registry, tmp_path) -> None:
    from huggingface_hub import HfApi

    folder = write_adapter(tmp_path / "deep")
    (folder / "adapter_config.json").write_text(DEEP)
    HfApi().create_repo("alice/deep")
    HfApi().upload_folder(repo_id="alice/deep", folder_path=folder)
    one_line_error(run("pull", "alice/deep", "--domain", "sentiment"), 5, "nested too deeply")
    assert registry.versions() == []


def test_a_csv_field_over_the_csv_limit(registry, tmp_path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    big = tmp_path / "big.csv"
    big.write_text("text\n" + "x" * 200_000 + "\n")
    one_line_error(
        run("predict", "sentiment@1", "--file", str(big)), 5, repr(str(big)), "field limit", "one text per line"
    )


def test_adapters_home_pointing_at_a_file(tmp_path) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    one_line_error(run("list", ADAPTERS_HOME=str(home)), 1, repr(str(home)), "is a file", "ADAPTERS_HOME")
    one_line_error(run("list", ADAPTERS_HOME=str(home / "below")), 1, "cannot be created", "ADAPTERS_HOME")
    assert home.read_text() == "not a folder"


@pytest.mark.parametrize("damage", ["garbage", "pages"])
def test_a_corrupt_registry_db(tmp_path, damage) -> None:
    home = tmp_path / "home"
    with Registry(home) as reg:
        reg.register("sentiment", write_adapter(tmp_path / "a"))
        reg.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row in registry.db itself
    db = home / "registry.db"
    data = bytearray(db.read_bytes())
    if damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:  # the header still opens; every page after the first is overwritten
        data[4096:] = b"\x5a" * (len(data) - 4096)
    db.write_bytes(bytes(data))
    for args in (["list"], ["show", "sentiment@1"], ["register", "sentiment", str(tmp_path / "a")]):
        one_line_error(run(*args, ADAPTERS_HOME=str(home)), 1, repr(str(db)), "cannot be read", "backup")
    assert db.read_bytes() == bytes(data)


def test_export_out_that_is_not_utf8(registry, tmp_path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    out = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff\xfe"))
    before = sorted(p.name for p in tmp_path.iterdir())
    one_line_error(run("export", "sentiment@1", "--out", str(out)), 1, "not a valid UTF-8 path", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
