"""The one place library errors become CLI messages and exit codes.

Exit codes (README "Exit codes"): 0 ok, 1 any other error, 2 usage (click),
3 not found, 4 conflict, 5 invalid input, 6 failed gate, 7 network, 8 auth.
They are chosen by the type an error inherits from, never by its message, so a
library error gets its code by subclassing the right marker.
"""

from __future__ import annotations

import os
from typing import Any

import click

from loradock.adapters.errors import AdaptersError
from loradock.registry.errors import ConflictError, GateError, RegistryError

DEBUG_ENV = "ADAPTERS_DEBUG"
_EXPECTED = (RegistryError, AdaptersError)

OK, ERROR, USAGE, NOT_FOUND, CONFLICT, INVALID, GATE, NETWORK, AUTH = range(9)

# First match wins: the specific markers before the broad standard types (a
# HubConflictError is a ConflictError first; PermissionError, ConnectionError and
# FileNotFoundError are all OSErrors, so each is named before any catch-all).
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (GateError, GATE),
    (ConflictError, CONFLICT),
    (PermissionError, AUTH),
    (ConnectionError, NETWORK),
    (LookupError, NOT_FOUND),
    (FileNotFoundError, NOT_FOUND),
    (ValueError, INVALID),
)


def exit_code(exc: BaseException) -> int:
    """The documented exit code for a library error, by the types it inherits."""
    for kind, code in EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return ERROR


class CliError(click.ClickException):
    """A one-line `Error: ...` message with the exit code of its kind."""

    def __init__(self, message: str, code: int = ERROR) -> None:
        super().__init__(message)
        # click declares exit_code on the class; each of our errors carries its own, read from the instance.
        self.exit_code = code  # type: ignore[misc]


class NotFound(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, NOT_FOUND)


class Group(click.Group):
    """A click group that prints library errors as one line (tracebacks with ADAPTERS_DEBUG=1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _EXPECTED as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise CliError(str(exc), exit_code(exc)) from None
        except KeyboardInterrupt:
            if os.environ.get(DEBUG_ENV):
                raise
            raise CliError("Interrupted; nothing half-done was stored.") from None
