"""Every command has help text, reachable with -h."""

from __future__ import annotations

import click
from click.testing import CliRunner

from loradock.cli.main import cli


def walk(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*prefix, name))


def test_every_command_has_help() -> None:
    runner = CliRunner()
    seen = []
    for path, command in walk(cli):
        assert command.help, f"adapters {' '.join(path)} has no help text"
        result = runner.invoke(cli, [*path, "-h"], catch_exceptions=False)
        assert result.exit_code == 0 and "Usage:" in result.output
        seen.append(" ".join(path))
    assert {"register", "list", "show", "path", "rm", "verify", "gc", "alias set", "domains add"} <= set(seen)


def test_version_flag() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("adapters, version ")


def test_list_json_and_table(registry, tmp_path) -> None:
    import json

    from tests.synthetic_adapters import write_adapter

    registry.register("sentiment", write_adapter(tmp_path / "a"), aliases=["production"])
    runner = CliRunner()
    table = runner.invoke(cli, ["list"], catch_exceptions=False).output
    assert "sentiment@1" in table and "latest,production" in table
    rows = json.loads(runner.invoke(cli, ["list", "--json"], catch_exceptions=False).output)
    assert rows[0]["ref"] == "sentiment@1" and rows[0]["aliases"] == ["latest", "production"]
    shown = json.loads(runner.invoke(cli, ["show", "sentiment", "--json"], catch_exceptions=False).output)
    assert shown["sha256"] == rows[0]["sha256"] and shown["artifacts"] == []
    domains = json.loads(runner.invoke(cli, ["domains", "list", "--json"], catch_exceptions=False).output)
    assert {d["name"] for d in domains} == {"medical", "education", "sentiment"}
