"""The model deployment: each replica runs today's ServingEngine (mixed-domain micro-batches, LRU +
refcount cache, metrics) over adapter bytes shipped by content hash, never over a registry."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from loradock.registry import AdapterVersion

from ..config import ServeConfig
from ..errors import OverloadedError, ServingError
from ..statuses import status_for
from .router import RESIDENT
from .shipping import ShippedAdapters

log = logging.getLogger(__name__)


def _replica_id() -> str:
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside a Serve replica (tests call the class directly)
        return f"pid-{os.getpid()}"


class AdapterReplica:
    """One base model and its engine; `classify` takes the version, its bytes' object ref and the texts."""

    def __init__(self, config: ServeConfig, threads: int = 1) -> None:
        import torch

        from ..engine import ServingEngine

        torch.set_num_threads(threads)  # a replica's CPU share, not the whole node
        self.store = ShippedAdapters()
        # No pinned domains and the torch backend: the ingress decides what is served.
        self.engine = ServingEngine(dataclasses.replace(config, domains=(), backend="torch"), self.store)  # type: ignore[arg-type]
        self.engine.start()
        self.replica = _replica_id()
        log.info(
            "replica %s ready on %s (adapters under %s)", self.replica, self.engine.model.base_model, self.store.home
        )

    async def classify(self, version: AdapterVersion, shipment: list[Any], texts: list[str]) -> dict[str, Any]:
        """Logits per text through `version`, batched with whatever else this replica has in flight.

        A refusal comes back as {"error", "status"} (not raised), so the ingress can tell a
        replica's answer from a replica's death; `shipment` is a one-item list so Ray hands
        over the object ref itself and the bytes move only on a miss.
        """
        try:
            if self.engine.cache.entry(version.sha256) is None:
                await self.store.receive(version, shipment[0])
            entry = self.engine.cache.lease(version)
            try:
                predictions = await self.engine.predict(entry, texts) if texts else []
            finally:
                self.engine.cache.release(entry)
        except ServingError as exc:
            out: dict[str, Any] = {"error": str(exc), "status": status_for(exc), "replica": self.replica}
            if isinstance(exc, OverloadedError):
                out["retry_after"] = exc.retry_after
            return out
        return {"logits": [p.logits.tolist() for p in predictions], "replica": self.replica}

    async def warm(self, version: AdapterVersion, shipment: list[Any]) -> dict[str, Any]:
        """Load `version` now (the ingress checks at startup that every served version can be served)."""
        return await self.classify(version, shipment, [])

    def info(self) -> dict[str, Any]:
        model = self.engine.model
        return {
            "base_model": model.base_model,
            "base_fingerprint": model.fingerprint,
            "device": str(model.device),
            "replica": self.replica,
            "home": str(self.store.home),
            "adapters_home": os.environ.get("ADAPTERS_HOME"),
        }

    def stats(self) -> dict[str, Any]:
        """Cache and batch counters for benchmarks and tests."""
        cache = self.engine.cache.stats
        rows = self.engine.metrics.registry.get_sample_value("loradock_batch_size_sum") or 0.0
        return {
            "replica": self.replica,
            "loads": cache.loads,
            "hits": cache.hits,
            "misses": cache.misses,
            "received": self.store.received,
            "batches": self.engine.batcher.batches,
            "rows": int(rows),
            "max_batch_size": self.engine.config.max_batch_size,
            "resident": len(self.engine.cache.entries()),
            "adapters_home": os.environ.get("ADAPTERS_HOME"),
        }

    def record_routing_stats(self) -> dict[str, Any]:
        """What the router prefers this replica for: the content hashes it holds."""
        return {RESIDENT: {e.sha256 for e in self.engine.cache.entries()}}

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
        store = getattr(self, "store", None)
        if store is not None:  # its scratch folder in the temp dir goes with it (issue 22.7)
            store.close()
