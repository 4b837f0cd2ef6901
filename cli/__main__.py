"""`python -m loradock.cli` runs the `adapters` command (for environments whose scripts dir is not on PATH)."""

from .main import cli

cli(prog_name="adapters")
