"""Same content, same version (contract 3): registering identical files again says so and stores nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner

from loradock.cli.main import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_identical_files_are_not_registered_again(registry, make_peft_folder) -> None:
    folder = str(make_peft_folder())
    first = run("register", "sentiment", folder)
    assert first.exit_code == 0 and "Registered sentiment@1" in first.output
    again = run("register", "sentiment", folder, "--alias", "staging")
    assert again.exit_code == 0, again.output
    assert "same files as sentiment@1; not registered again" in again.output.lower()
    assert [v.ref for v in registry.versions("sentiment")] == ["sentiment@1"]
    assert registry.resolve("sentiment@staging").number == 1  # the alias still moves

    as_json = json.loads(run("register", "sentiment", folder, "--json").output)
    assert as_json["ref"] == "sentiment@1" and as_json["reused"] is True


def test_new_version_registers_a_copy(registry, make_peft_folder) -> None:
    folder = str(make_peft_folder())
    run("register", "sentiment", folder)
    copy = json.loads(run("register", "sentiment", folder, "--new-version", "--json").output)
    assert copy["ref"] == "sentiment@2" and copy["reused"] is False
    assert registry.resolve("sentiment@1").sha256 == copy["sha256"]
