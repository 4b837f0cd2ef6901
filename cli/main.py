"""The `adapters` command: parse, call the library, render."""

from __future__ import annotations

import importlib
import logging
import os

import click

from . import __version__
from .errors import Group
from .registry_cmds import COMMANDS

# Model-side commands live in their own modules; each module only defines
# click commands and imports torch inside them, so `adapters list` stays fast.
_EXTENSIONS = (
    "loradock.cli.train_cmds", "loradock.cli.hub_cmds", "loradock.cli.export_cmds", "loradock.cli.serve_cmds",
    "loradock.cli.demo_cmds",
    # Not all present yet; a missing one is skipped below.
    "loradock.cli.artifact_cmds", "loradock.cli.domain_cmds", "loradock.cli.ui_cmds",
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="adapters")
def cli() -> None:
    """loradock: keep, ship and serve LoRA adapters, one per domain, on one base model.

    The registry lives in ADAPTERS_HOME (default: your user data dir).
    Set ADAPTERS_DEBUG=1 to see tracebacks.
    """
    logging.basicConfig(level=logging.DEBUG if os.environ.get("ADAPTERS_DEBUG") else logging.WARNING)


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
