"""The server's view of adapters/peft_weights.py: the same tensors, its refusals as AdapterLoadError (HTTP 409)."""

from __future__ import annotations

from pathlib import Path

from loradock.adapters.errors import AdapterWeightsError
from loradock.adapters.peft_weights import FINAL_LINEAR, AdapterWeights
from loradock.adapters.peft_weights import read_adapter as _read_adapter
from loradock.registry import AdapterVersion

from .errors import AdapterLoadError

__all__ = ["FINAL_LINEAR", "AdapterWeights", "read_adapter"]


def read_adapter(version: AdapterVersion, folder: Path) -> AdapterWeights:
    """`version`'s LoRA and head tensors; a version the server cannot apply raises AdapterLoadError."""
    try:
        return _read_adapter(version, folder)
    except AdapterWeightsError as exc:
        raise AdapterLoadError(str(exc)) from None
