from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Registry
from loradock.registry.errors import AliasError, UnknownVersionError, VersionInUseError
from tests.synthetic_adapters import write_adapter


@pytest.fixture
def three(registry: Registry, tmp_path: Path) -> Registry:
    for seed in (1, 2, 3):
        registry.register("medical", write_adapter(tmp_path / f"v{seed}", labels=5, seed=seed))
    return registry


def test_alias_moves_and_history_allows_rollback(three: Registry) -> None:
    three.set_alias("medical", "production", 1)
    three.set_alias("medical", "production", 3)
    assert three.resolve("medical@production").number == 3
    history = three.alias_history("medical", "production")
    assert [(e.old, e.new) for e in history] == [(None, "1"), ("1", "3")]
    three.set_alias("medical", "production", history[-1].old)  # rollback
    assert three.resolve("medical@production").number == 1


def test_alias_can_target_another_alias(three: Registry) -> None:
    three.set_alias("medical", "staging", 2)
    three.set_alias("medical", "production", "staging")
    assert three.resolve("medical@production").number == 2


def test_alias_on_missing_version_changes_nothing(three: Registry) -> None:
    before = three.last_event_id()
    with pytest.raises(UnknownVersionError, match="medical@9"):
        three.set_alias("medical", "production", 9)
    assert three.aliases("medical") == [] and three.last_event_id() == before


def test_latest_cannot_be_set(three: Registry) -> None:
    with pytest.raises(AliasError, match="latest"):
        three.set_alias("medical", "latest", 1)


def test_removing_aliased_version_needs_force(three: Registry) -> None:
    three.set_alias("medical", "production", 2)
    with pytest.raises(VersionInUseError, match="production"):
        three.remove("medical@2")
    assert three.resolve("medical@production").number == 2
    three.remove("medical@2", force=True)
    assert three.aliases("medical") == []
    assert [e.action for e in three.alias_history("medical", "production")] == ["alias.set", "alias.rm"]


def test_cli_alias_commands(three: Registry) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["alias", "set", "medical", "production", "2"], catch_exceptions=False)
    assert result.exit_code == 0 and "medical@production -> medical@2" in result.output
    result = runner.invoke(cli, ["alias", "set", "medical", "production", "3"], catch_exceptions=False)
    result = runner.invoke(cli, ["alias", "history", "medical", "production"], catch_exceptions=False)
    lines = [line.split()[-2:] for line in result.output.strip().splitlines()[2:]]
    assert lines == [["-", "2"], ["2", "3"]]
    result = runner.invoke(cli, ["alias", "list", "--json"], catch_exceptions=False)
    assert '"number": 3' in result.output
