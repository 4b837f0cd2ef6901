"""Help keeps examples on their own lines; --log-level / ADAPTERS_LOG_LEVEL; library warnings silenced at the CLI only."""

from __future__ import annotations

import logging
import warnings

from click.testing import CliRunner

from loradock.cli.main import cli, quiet_library_warnings
from tests.cli.test_cli_help import walk


def test_every_example_line_stays_on_its_own_line() -> None:
    runner = CliRunner()
    checked = 0
    for path, command in walk(cli):
        lines = (command.help or "").splitlines()
        examples = [line.strip() for line in lines if line.strip().startswith("adapters ")]
        if not examples:
            continue
        shown = runner.invoke(cli, [*path, "-h"], terminal_width=60, catch_exceptions=False).output
        shown_lines = [line.strip() for line in shown.splitlines()]
        for example in examples:
            assert example in shown_lines, f"adapters {' '.join(path)} -h rewraps {example!r}"
        checked += 1
    assert checked >= 8


def test_log_level_option_and_env(registry, caplog) -> None:
    runner = CliRunner()
    with caplog.at_level(logging.NOTSET):
        runner.invoke(cli, ["--log-level", "debug", "list"], catch_exceptions=False)
        assert logging.getLogger().level == logging.DEBUG
        runner.invoke(cli, ["list"], env={"ADAPTERS_LOG_LEVEL": "error"}, catch_exceptions=False)
        assert logging.getLogger().level == logging.ERROR
        runner.invoke(cli, ["list"], env={"ADAPTERS_LOG_LEVEL": None}, catch_exceptions=False)
        assert logging.getLogger().level == logging.WARNING
    bad = runner.invoke(cli, ["--log-level", "loud", "list"])
    assert bad.exit_code == 2 and "'loud'" in bad.output


def test_library_warnings_are_silenced_only_at_the_cli() -> None:
    def emitted(module: str, category: type[Warning], message: str = "deprecated thing") -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            quiet_library_warnings()
            warnings.warn_explicit(message, category, "x.py", 1, module=module)
        return bool(caught)

    assert not emitted("transformers.modeling_utils", FutureWarning)
    assert not emitted("peft.tuners.lora", DeprecationWarning)
    assert not emitted("peft.utils.save_and_load", UserWarning, "Could not find a config file in x - will assume")
    assert emitted("my_project.code", FutureWarning)  # the user's own warnings still show
    assert emitted("transformers.modeling_utils", UserWarning)  # and warnings a user can act on


def test_listing_commands_import_no_model_libraries(tmp_path) -> None:
    """`adapters list` stays a fast process: no numpy, torch or transformers at start-up."""
    import subprocess
    import sys

    code = (
        "import sys; from loradock.cli.main import cli\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'torch', 'transformers', 'peft'})\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"ADAPTERS_HOME": str(tmp_path), "PATH": ""})
