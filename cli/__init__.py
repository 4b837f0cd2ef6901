"""loradock's click front end: the `adapters` command."""

from loradock import __version__

__all__ = ["__version__"]
