"""The one interface a serving backend implements; the engine types against it and never asks which backend it has.

A backend turns an adapter's weights into its device-tier form (`prepare`),
tokenizes (`encode`) and runs a mixed batch, each row through its own
adapter (`run`). What a prepared adapter and a row's logits are is the
backend's business: the engine passes them through untouched (torch tensors
for `torch_backend.py`, numpy arrays and ready onnxruntime values for `onnx.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..weights import AdapterWeights


@runtime_checkable
class Backend(Protocol):
    """What the serving engine drives: one base model, any number of adapters per batch."""

    backend: str  # the --backend name: "torch" or "onnx"
    base_model: str
    fingerprint: str  # the base weights' fingerprint: adapters trained on another base are refused
    device: str
    max_length: int

    @property
    def name(self) -> str:
        """The backend with its variant, e.g. 'onnx-int8' (the `loradock_backend_info` label)."""
        ...

    def check_modules(self, weights: AdapterWeights) -> None:
        """Refuse (AdapterLoadError) an adapter this base cannot run."""
        ...

    def prepare(self, weights: AdapterWeights) -> Any:
        """The adapter in the form `run` takes, kept in the cache's device tier."""
        ...

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to max_length."""
        ...

    def run(self, rows: Sequence[Sequence[int]], adapters: Sequence[Any]) -> list[Any]:
        """Logits per row, each row through its own prepared adapter."""
        ...

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        """Register the backend's own counters, if it has any."""
        ...

    def describe(self, adapter: Any) -> dict[str, Any]:
        """Backend fields for `/v1/domains` about a prepared adapter (at least `backend`)."""
        ...


class _Hashed(Protocol):
    @property
    def sha256(self) -> str: ...


H = TypeVar("H", bound=_Hashed)


def adapter_slots(adapters: Sequence[H]) -> tuple[dict[str, int], list[H]]:
    """Each distinct adapter of a batch once, in first-seen order, and its slot by content hash.

    A mixed batch stacks each adapter once and gives every row the slot of its own.
    """
    slots: dict[str, int] = {}
    unique: list[H] = []
    for adapter in adapters:
        if adapter.sha256 not in slots:
            slots[adapter.sha256] = len(unique)
            unique.append(adapter)
    return slots, unique
