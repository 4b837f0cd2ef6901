"""The one table from loradock's errors to HTTP statuses: the API, the console and Ray replicas read it."""

from __future__ import annotations

from loradock.adapters.errors import AdaptersError
from loradock.registry.errors import (
    ConflictError,
    CorruptBlobError,
    CorruptIndexError,
    GateError,
    HomeError,
    RegistryError,
)

from .errors import AdapterLoadError, OverloadedError, RequestTooLargeError, ServeConfigError, UnknownServedDomainError
from .ray.errors import ReplicaRefusedError, ShipmentError

# What the HTTP layers catch: every refusal loradock raises on purpose. Anything else is a bug (500).
LORADOCK_ERRORS: tuple[type[Exception], ...] = (RegistryError, AdaptersError)

# Looked up along the error's MRO, so the most specific entry wins: a ShipmentError is a
# ValueError too, but 409. The standard types are the registry's markers (registry/errors.py):
# not-found errors are LookupErrors, bad input ValueErrors.
STATUSES: dict[type[Exception], int] = {
    UnknownServedDomainError: 404,
    RequestTooLargeError: 413,
    OverloadedError: 503,  # AllPinned, ShuttingDown, ReplicasUnavailable: retry after Retry-After
    AdapterLoadError: 409,
    ShipmentError: 409,
    ServeConfigError: 500,  # the server's own configuration, never the request's
    CorruptBlobError: 409,  # the version exists but its stored bytes cannot be served
    HomeError: 500,  # the server's storage, not the request
    CorruptIndexError: 500,
    ConflictError: 409,
    GateError: 409,
    LookupError: 404,
    # 422, not vLLM's 400: the API answers every other invalid field 422 (FastAPI's validation),
    # and a bad version or ref is one more invalid field.
    ValueError: 422,
}

# A loradock error no entry names is still a refusal of this request ("nothing changed", say
# the base classes), so it gets HTTP's generic client error, as vLLM's catch-all does; 409 and
# 404 claim more (a conflict with stored state, a missing thing) and only listed classes earn them.
UNKNOWN_STATUS = 400


def status_for(exc: BaseException) -> int:
    """The HTTP status for `exc`: its table entry, 400 for any other loradock error, 500 for the rest."""
    if isinstance(exc, ReplicaRefusedError):  # relays the status a replica chose from this table
        return exc.status
    if not isinstance(exc, LORADOCK_ERRORS):
        return 500
    return next((STATUSES[cls] for cls in type(exc).__mro__ if cls in STATUSES), UNKNOWN_STATUS)
