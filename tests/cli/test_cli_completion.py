"""Shell completion: domains and DOMAIN@REF come from the registry, cheaply and without side effects."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from loradock.cli.main import cli
from tests.synthetic_adapters import write_adapter


def complete(words: str, env_home) -> list[str]:
    """What bash would offer for the last word of `words`, through click's real completion protocol."""
    parts = words.split(" ")
    result = CliRunner().invoke(
        cli,
        [],
        prog_name="adapters",
        env={
            "_ADAPTERS_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
            "ADAPTERS_HOME": str(env_home),
        },
    )
    return [line.split(",", 1)[1] for line in result.output.splitlines() if line]


def test_refs_complete_from_the_registry(registry, tmp_path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    registry.register("sentiment", write_adapter(tmp_path / "b", seed=1), aliases=["production"])
    offered = complete("adapters show sent", registry.home)
    assert offered == ["sentiment@latest", "sentiment@production", "sentiment@2", "sentiment@1"]
    assert complete("adapters path sentiment@p", registry.home) == ["sentiment@production"]
    assert complete("adapters predict sentiment@", registry.home)[:2] == ["sentiment@latest", "sentiment@production"]
    assert complete("adapters show med", registry.home) == []  # no versions yet: nothing to name


def test_domains_complete_without_creating_a_home(tmp_path) -> None:
    home = tmp_path / "nowhere"
    assert complete("adapters list ed", home) == ["education"]
    assert complete("adapters alias set m", home) == ["medical"]
    assert not home.exists()


def test_completion_script_is_printed_without_importing_torch(tmp_path) -> None:
    code = (
        "import os, sys; os.environ['_ADAPTERS_COMPLETE'] = 'bash_source'; from loradock.cli.main import cli\n"
        "try:\n    cli(prog_name='adapters')\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'completion imported torch'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"ADAPTERS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert "_ADAPTERS_COMPLETE=bash_complete" in out.stdout and "complete " in out.stdout
