"""The ingress deployment: `adapters serve`'s FastAPI app over an engine whose batches run on replicas.

`IngressEngine` is a ServingEngine whose cache holds object refs to adapter bytes instead of
tensors and whose `predict` forwards to the model deployment, so the routes, auth, error
envelopes, hot swap (registry watcher), console and metrics are `serving/app.py`'s own,
unchanged. Only this process reads the SQLite registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loradock.registry import AdapterVersion, Registry

from ..cache import CacheEntry
from ..config import ServeConfig
from ..engine import ServingEngine, VersionedLogits
from ..errors import AdapterLoadError, RequestTooLargeError, ServingError
from .errors import ReplicaRefusedError, ReplicasUnavailableError
from .shipping import Shipment, ship

log = logging.getLogger(__name__)

WARM_TIMEOUT_S = 120.0


@dataclass
class RemoteBase:
    """The replicas' base model as the ingress knows it (a `Backend`): names and fingerprint, no weights here.

    `IngressEngine` overrides loading and prediction, so `encode` and `run` are
    never called here: batches run on the replicas' own backends.
    """

    base_model: str
    fingerprint: str
    device: str
    max_length: int = 0  # the replicas truncate
    backend: str = "ray"

    @property
    def name(self) -> str:
        return self.backend

    def check_modules(self, weights: Any) -> None:
        """Nothing to check here: a replica refuses an adapter when it warms it (`IngressEngine._load`)."""

    def prepare(self, weights: Any) -> Any:
        """The `Shipment` IngressEngine._load made, as it is: the ingress's "device tier" is the object store."""
        return weights

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError("The ingress does not tokenize: its replicas do (IngressEngine.predict).")

    def run(self, rows: Sequence[Sequence[int]], adapters: Sequence[Any]) -> list[Any]:
        raise NotImplementedError("The ingress runs no batches: its replicas do (IngressEngine.predict).")

    def bind_metrics(self, registry: Any) -> None:
        """No counters of its own: each replica's backend keeps its own."""

    def describe(self, adapter: Any) -> dict[str, Any]:
        return {"backend": self.backend}


def _retryable() -> tuple[type[BaseException], ...]:
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

    return (RayActorError, BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError)


def refusal(out: dict[str, Any]) -> ServingError:
    """A replica's {"error", "status"} answer as the error the HTTP layer maps to the same status."""
    message, status = str(out["error"]), int(out.get("status", 500))
    if status == 503:
        return ReplicasUnavailableError(message, retry_after=int(out.get("retry_after", 1)))
    if status == 409:
        return AdapterLoadError(message)
    if status == 413:
        return RequestTooLargeError(message)
    return ReplicaRefusedError(message, status)


class IngressEngine(ServingEngine):
    """Routes, leases and swaps like ServingEngine; loads mean "ship the bytes", batches run on replicas."""

    def __init__(
        self, config: ServeConfig, registry: Registry, model: RemoteBase, replicas: Any, retries: int = 3
    ) -> None:
        self.replicas = replicas  # DeploymentHandle of the model deployment
        self.retries = retries
        self.retried = 0  # calls repeated on another replica (a replica died or was full)
        super().__init__(config, registry, model=model)

    def _load(self, version: AdapterVersion) -> Shipment:  # type: ignore[override]
        """Registry -> object store, then one replica loads it, so a version that cannot be served
        (another base, unverified, unsupported PEFT) is refused here and a swap keeps the old one."""
        shipment = ship(self.registry, version)
        out = (
            self.replicas.options(multiplexed_model_id=version.sha256)
            .warm.remote(version, [shipment.ref])
            .result(timeout_s=WARM_TIMEOUT_S)
        )
        if "error" in out:
            raise refusal(out)
        return shipment

    async def predict(self, entry: CacheEntry, texts: Sequence[str]) -> list[VersionedLogits]:
        """Logits per text from a replica; classify is idempotent, so a dead or full replica is retried."""
        version, shipment = entry.version, entry.host
        handle = self.replicas.options(multiplexed_model_id=version.sha256)
        problem = "no replica"
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            try:
                out = await handle.classify.remote(version, [shipment.ref], list(texts))
            except _retryable() as exc:
                problem = f"{type(exc).__name__}"
                log.warning("replica call for %s failed (%s); retrying on another replica", version.ref, problem)
                continue
            if "error" not in out:
                return [VersionedLogits(row, version) for row in out["logits"]]
            if int(out.get("status", 500)) != 503:
                raise refusal(out)
            problem = f"replica {out.get('replica')} full"
        raise ReplicasUnavailableError(
            f"No replica could answer after {self.retries + 1} tries ({problem}); retry after the Retry-After seconds.",
            retry_after=1,
        )


class Ingress:
    """The ingress deployment class (wrapped by `serve.ingress()` in `app.build_app`)."""

    # Ray Serve awaits a coroutine constructor; mypy only knows synchronous ones.
    async def __init__(self, config: ServeConfig, home: str | None, replicas: Any, retries: int = 3) -> None:  # type: ignore[misc]
        info = await replicas.info.remote()
        model = RemoteBase(info["base_model"], info["base_fingerprint"], info["device"])
        # Built off the event loop: pinning each served version waits for a replica to load it.
        self.engine = await asyncio.to_thread(IngressEngine, config, Registry(home), model, replicas, retries)
        self.config = config

    def __serve_build_asgi_app__(self) -> Any:
        from ..app import create_app

        return create_app(self.config, self.engine.registry, engine=self.engine)
