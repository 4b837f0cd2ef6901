"""loradock's click front end: the `adapters` command."""
