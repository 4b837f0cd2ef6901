"""Every bad input: a one-line error naming the value and the next step, nothing changed on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Registry
from tests.synthetic_adapters import write_adapter


def snapshot(home: Path) -> dict[str, str]:
    """Every file under home with its hash (the WAL files hold the DB's live pages)."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm",))
    }


@pytest.fixture
def seeded(registry: Registry, tmp_path: Path) -> Registry:
    registry.register("sentiment", write_adapter(tmp_path / "good"), aliases=["production"])
    registry.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return registry


def bad_folders(tmp_path: Path) -> dict[str, Path]:
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "target_modules": ["query"]}')
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = write_adapter(tmp_path / "broken-config")
    (broken / "adapter_config.json").write_text("{not json")
    return {
        "pickled": pickled,
        "empty": empty,
        "broken-config": broken,
        "nan": write_adapter(tmp_path / "nan", poison="nan"),
        "inf": write_adapter(tmp_path / "inf", poison="inf"),
        "rank": write_adapter(tmp_path / "rank", config_overrides={"r": 8}),
        "targets": write_adapter(tmp_path / "targets", config_overrides={"target_modules": ["key"]}),
        "labels": write_adapter(tmp_path / "labels", labels=3),
    }


EXPECTED = {
    "pickled": ["adapter_model.bin", "safe_serialization=True"],
    "empty": ["No adapter_config.json", "save_pretrained"],
    "broken-config": ["not valid JSON"],
    "nan": ["NaN or Inf"],
    "inf": ["NaN or Inf"],
    "rank": ["r=8"],
    "targets": ["target_modules"],
    "labels": ["3 outputs", "2 labels"],
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_bad_adapter_folder_refused_and_nothing_changes(seeded: Registry, tmp_path: Path, case: str) -> None:
    folder = bad_folders(tmp_path)[case]
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights")
    before = snapshot(seeded.home)
    result = CliRunner().invoke(cli, ["register", "sentiment", str(folder), "--base", str(base)])
    assert result.exit_code == 5, result.output  # invalid input
    message = result.output.strip()
    assert message.startswith("Error: ") and len(message.splitlines()) == 1
    for part in EXPECTED[case]:
        assert part in message
    assert snapshot(seeded.home) == before
    assert [v.ref for v in seeded.versions()] == ["sentiment@1"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["show", "nope@1"], ["Unknown domain 'nope'", "adapters domains add nope"]),
        (["show", "sentiment@7"], ["No version 'sentiment@7'", "adapters list sentiment"]),
        (["show", "sentiment@prod"], ["No alias 'prod'", "adapters alias set sentiment prod"]),
        (["show", "medical@@x"], ["Malformed ref 'medical@@x'", "DOMAIN@N"]),
        (["show", "../x"], ["'../x'", "no '/', '.'"]),
        (["path", "a/b@1"], ["'a/b@1'"]),
        (["alias", "set", "sentiment", "../evil", "1"], ["'../evil'"]),
        (["alias", "set", "sentiment", "staging", "5"], ["sentiment@5"]),
        (["alias", "set", "sentiment", "123", "1"], ["'123'", "version number"]),
        (["rm", "sentiment@1"], ["aliased as production", "--force"]),
        (["domains", "add", "x/y", "--labels", "a,b"], ["'x/y'"]),
        (["domains", "add", "solo", "--labels", "a"], ["at least 2 labels"]),
        (["domains", "add", "medical", "--labels", "a,b"], ["already exists"]),
        (["register", "sentiment", "/definitely/not/here"], ["/definitely/not/here"]),
    ],
)
def test_bad_cli_input_is_one_clear_line(seeded: Registry, args: list[str], expected: list[str]) -> None:
    before = snapshot(seeded.home)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    message = result.output.strip().splitlines()[-1]
    for part in expected:
        assert part in message, message
    assert snapshot(seeded.home) == before
    assert seeded.resolve("sentiment@production").number == 1
