"""Errors of the serving backends (subclasses of the serving package's errors)."""

from __future__ import annotations

from ..errors import AdapterLoadError, ServeConfigError


class BackendError(ServeConfigError):
    """A backend that cannot run with this configuration; nothing was started."""


class GraphMismatchError(AdapterLoadError):
    """An adapter the base's ONNX graph has no LoRA inputs for (other target modules)."""
