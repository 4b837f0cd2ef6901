"""The `adapters` command: parse, call the library, render."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import warnings

import click

from . import __version__
from .errors import DEBUG_ENV, Group
from .registry_cmds import COMMANDS

# Model-side commands live in their own modules; each module only defines
# click commands and imports torch inside them, so `adapters list` stays fast.
_EXTENSIONS = (
    "loradock.cli.train_cmds",
    "loradock.cli.hub_cmds",
    "loradock.cli.export_cmds",
    "loradock.cli.serve_cmds",
    "loradock.cli.demo_cmds",
    # Not all present yet; a missing one is skipped below.
    "loradock.cli.artifact_cmds",
    "loradock.cli.domain_cmds",
    "loradock.cli.ui_cmds",
)

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_ENV = "ADAPTERS_LOG_LEVEL"


def quiet_library_warnings() -> None:
    """Silence warnings about library internals a user of the command cannot act on.

    Only here at the CLI boundary: Python users of the library keep them.
    (E.g. peft calls transformers' deprecated `is_gradient_checkpointing`, and
    warns that the embedded base has no Hub config to compare vocabularies with.)
    """
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(transformers|peft|torch|huggingface_hub)\b")
    warnings.filterwarnings("ignore", message=r"Could not find a config file in ", category=UserWarning)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="adapters")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    envvar=LOG_LEVEL_ENV,
    default=None,
    help=f"Log messages at this level and above [env {LOG_LEVEL_ENV}; default: warning].",
)
def cli(log_level: str | None) -> None:
    """loradock: keep, ship and serve LoRA adapters, one per domain, on one base model.

    The registry lives in ADAPTERS_HOME (default: your user data dir).
    Set ADAPTERS_DEBUG=1 to see tracebacks; exit codes are listed in the README.

    \b
    Shell completion (bash; zsh and fish likewise):
        eval "$(_ADAPTERS_COMPLETE=bash_source adapters)"
    """
    level = log_level or ("debug" if os.environ.get(DEBUG_ENV) else "warning")
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(getattr(logging, level.upper()))
    if not os.environ.get(DEBUG_ENV):
        quiet_library_warnings()


for _command in COMMANDS:
    cli.add_command(_command)

for _module in _EXTENSIONS:
    try:
        _mod = importlib.import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
        continue
    for _command in _mod.COMMANDS:
        cli.add_command(_command)


def keep_examples(help_text: str | None) -> str | None:
    """Mark every indented paragraph (an example block) with click's \\b so it is not rewrapped into one line."""
    if not help_text:
        return help_text
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(
        "\b\n" + p
        if p.strip() and not p.startswith("\b") and all(line.startswith(" ") for line in p.splitlines())
        else p
        for p in paragraphs
    )


def _keep_examples_everywhere(command: click.Command) -> None:
    command.help = keep_examples(command.help)
    for sub in getattr(command, "commands", {}).values():
        _keep_examples_everywhere(sub)


_keep_examples_everywhere(cli)
