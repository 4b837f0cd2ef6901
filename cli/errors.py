"""The one place library errors become CLI messages."""

from __future__ import annotations

import os
from typing import Any

import click

from loradock.adapters.errors import AdaptersError
from loradock.registry.errors import RegistryError

DEBUG_ENV = "ADAPTERS_DEBUG"
_EXPECTED = (RegistryError, AdaptersError)


class Group(click.Group):
    """A click group that prints library errors as one line (tracebacks with ADAPTERS_DEBUG=1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _EXPECTED as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException("Interrupted; nothing half-done was stored.") from None
