"""loradock's click front end: the `adapters` command."""

__version__ = "0.1.0"
