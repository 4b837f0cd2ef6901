"""Errors of the Ray Serve application; each is a ServingError, so serving/statuses.py maps it to one status."""

from __future__ import annotations

from ..errors import OverloadedError, ServeConfigError, ServingError


class RayServingError(ServingError):
    """Base class: the Ray application refused or failed an operation."""


class RayNotInstalledError(RayServingError, ImportError):
    """`ray[serve]` is missing."""

    def __init__(self) -> None:
        super().__init__(
            "Ray Serve is not installed; install it with: pip install 'loradock[ray]' "
            "(or pip install 'ray[serve]>=2.40')."
        )


class RayOptionsError(RayServingError, ServeConfigError):
    """Ray options that cannot work (replicas, CPUs, autoscaling); nothing was started."""


class ShipmentError(RayServingError, ValueError):
    """Adapter bytes that arrived through the object store do not match their content hash."""


class ReplicasUnavailableError(RayServingError, OverloadedError):
    """Every retry on another replica failed (replicas dying or full): 503 with Retry-After."""


class ReplicaRefusedError(RayServingError):
    """A replica refused the request; carries the replica's status code and message."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)
