"""Serving backends: what runs a mixed batch for the engine.

The engine owns routing, batching and the adapter cache; a backend prepares an
adapter for its device tier, runs rows each with its own adapter, and says its
name: the `Backend` protocol (`base.py`). `torch` is `torch_backend.py`
(per-row LoRA in eager torch); `onnx` is one onnxruntime graph per base
fingerprint with the adapters as inputs (`onnx.py`, graph from
`adapters/export/onnx_multi.py`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .base import Backend
from .errors import BackendError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from loradock.registry import Registry

    from ..config import ServeConfig

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
__all__ = ["BACKENDS", "Backend", "bind_metrics", "check_backend", "choose_backend", "make_model"]


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise BackendError(f"Unknown backend {name!r}; use one of: {', '.join(BACKENDS)}.")
    return name


def choose_backend(name: str, device: str, home: Any, base_model: str) -> str:
    """`auto`: onnx on CPU once the base's graph has been exported, torch on CUDA or without a graph."""
    check_backend(name)
    if name != "auto":
        if name == "onnx" and device.startswith("cuda"):
            raise BackendError("--backend onnx runs on CPU here; use --backend torch (or auto) with a GPU.")
        return name
    if device.startswith("cuda"):
        return "torch"
    from loradock.adapters.base import base_info
    from loradock.adapters.export.onnx_multi import find_graph

    found = find_graph(home, base_info(base_model)["base_fingerprint"])
    if found is None:
        log.info(
            "backend auto: torch (no multi-adapter ONNX graph for this base yet; "
            "'adapters serve --backend onnx' exports it once)"
        )
        return "torch"
    return "onnx"


def make_model(config: ServeConfig, registry: Registry, backend: str = "auto") -> Backend:
    """The model object the engine drives, for the backend chosen."""
    from loradock.adapters.base import pick_device

    device = pick_device(config.device)
    chosen = choose_backend(backend, device, registry.home, config.base_model)
    if chosen == "onnx":
        from .onnx import OnnxMultiLoraModel

        return OnnxMultiLoraModel.for_base(
            registry, config.base_model, config.max_length, threads=config.onnx_threads(config.batch_workers("onnx"))
        )
    from .torch_backend import MultiLoraModel

    return MultiLoraModel(config.base_model, device, config.max_length)


def bind_metrics(model: Backend, registry: CollectorRegistry) -> None:
    """`loradock_backend_info{backend=...}` for every backend, plus the backend's own counters."""
    from prometheus_client import Gauge

    Gauge("loradock_backend_info", "The backend running batches (value 1).", ["backend"], registry=registry).labels(
        model.name
    ).set(1)
    model.bind_metrics(registry)
