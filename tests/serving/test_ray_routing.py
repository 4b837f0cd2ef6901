"""The Ray application's parts without a cluster: routing choice, shipped-bytes checks, retries -> 503."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("ray.serve", reason="ray[serve] is not installed: pip install 'loradock[ray]'")

from loradock.registry import Registry, VersionInfo
from loradock.serving.ray.errors import ShipmentError
from loradock.serving.ray.router import RESIDENT, AdapterAffinityRouter
from loradock.serving.ray.shipping import ShippedAdapters, verify
from tests.synthetic_adapters import write_adapter


@dataclass(frozen=True)
class _Id:  # ReplicaID's shape: hashable, with unique_id
    unique_id: str


def _replicas(n: int, resident: dict[int, set[str]] | None = None) -> list[SimpleNamespace]:
    resident = resident or {}
    return [
        SimpleNamespace(replica_id=_Id(f"r{i}"), routing_stats={RESIDENT: resident.get(i, set())}) for i in range(n)
    ]


def _choose(replicas: list, sha: str, queues: dict[str, int] | None = None, spill: int = 4) -> list[list[str]]:
    queues = queues or {}
    router = SimpleNamespace(spill=spill, _queue=lambda r: queues.get(r.replica_id.unique_id, 0))
    pending = SimpleNamespace(metadata=SimpleNamespace(multiplexed_model_id=sha))
    ranks = asyncio.run(AdapterAffinityRouter.choose_replicas(router, replicas, pending))
    return [[r.replica_id.unique_id for r in rank] for rank in ranks]


def test_cold_adapters_get_a_stable_home_spread_over_replicas() -> None:
    replicas = _replicas(4)
    homes = {sha: _choose(replicas, sha)[0] for sha in (f"sha{i}" for i in range(200))}
    assert all(len(h) == 1 for h in homes.values())
    assert {sha: _choose(replicas[::-1], sha)[0] for sha in homes} == homes  # independent of list order
    counts = {r: sum(h == [r] for h in homes.values()) for r in ("r0", "r1", "r2", "r3")}
    assert min(counts.values()) > 20, counts  # rendezvous hashing spreads adapters over every replica


def test_resident_replicas_preferred_and_any_replica_remains_a_fallback() -> None:
    replicas = _replicas(3, {0: {"hot"}, 2: {"hot"}})
    first, fallback = _choose(replicas, "hot")
    assert sorted(first) == ["r0", "r2"] and sorted(fallback) == ["r0", "r1", "r2"]


def test_a_busy_holder_spills_the_adapter_to_another_replica() -> None:
    replicas = _replicas(2, {0: {"hot"}})
    assert _choose(replicas, "hot", {"r0": 3, "r1": 0})[0] == ["r0"]  # within the slack: stay resident
    assert _choose(replicas, "hot", {"r0": 9, "r1": 0})[0] == ["r1"]  # too busy: spread it


def test_no_model_id_means_plain_least_loaded_choice() -> None:
    replicas = _replicas(2)
    assert _choose(replicas, "") == [["r0", "r1"]]


def _version(tmp_path: Path) -> tuple[Registry, object]:
    registry = Registry(tmp_path / "home")
    folder = write_adapter(tmp_path / "a", labels=2)
    version = registry.register(
        "sentiment", folder, VersionInfo(base_model="tiny", base_fingerprint="sha256:x"), aliases=["production"]
    )
    return registry, version


def test_shipped_bytes_are_verified_before_use(tmp_path: Path) -> None:
    registry, version = _version(tmp_path)
    folder = registry.path(version.ref)
    files = {name: (folder / name).read_bytes() for name in version.files}
    store = ShippedAdapters(tmp_path / "replica")
    tampered = dict(files, **{"adapter_model.safetensors": files["adapter_model.safetensors"][:-1] + b"\0"})
    with pytest.raises(ShipmentError, match="hash"):
        store.accept(version, tampered)
    with pytest.raises(ShipmentError, match="differ"):
        verify(version, {**files, "extra.bin": b"x"})
    assert not store.has(version) and not (tmp_path / "replica" / version.sha256).exists()
    path = store.accept(version, files)
    assert store.has(version) and store.path(version.ref) == path
    assert {p.name: p.read_bytes() for p in path.iterdir()} == files
    registry.close()


class _Call:
    def __init__(self, outcome: object) -> None:
        self.outcome = outcome

    def result(self, timeout_s: float | None = None) -> object:
        return self.outcome

    def __await__(self):
        async def run() -> object:
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

        return run().__await__()


class _FakeReplicas:
    """A DeploymentHandle stand-in: `classify` answers from a script (exceptions raise)."""

    def __init__(self, script: list) -> None:
        self.script = script
        self.calls = 0
        self.warm = SimpleNamespace(remote=lambda *a: _Call({"logits": [], "replica": "fake"}))
        self.classify = SimpleNamespace(remote=self._classify)

    def options(self, **_: object) -> _FakeReplicas:
        return self

    def _classify(self, version: object, shipment: list, texts: list) -> _Call:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else self.script_default
        return _Call(outcome)

    script_default: object = None


def _client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: list):
    from fastapi.testclient import TestClient
    from ray.exceptions import ActorDiedError

    from loradock.serving.app import create_app
    from loradock.serving.config import ServeConfig
    from loradock.serving.ray import ingress
    from loradock.serving.ray.shipping import Shipment

    registry, version = _version(tmp_path)
    monkeypatch.setattr(ingress, "ship", lambda reg, v: Shipment(v.sha256, "object-ref", 1))
    replicas = _FakeReplicas(script)
    replicas.script_default = ActorDiedError()
    engine = ingress.IngressEngine(
        ServeConfig(domains=("sentiment@production",), port=0),
        registry,
        ingress.RemoteBase("tiny", "sha256:x", "cpu"),
        replicas,
        retries=2,
    )
    app = create_app(engine.config, registry, engine=engine)
    return TestClient(app), engine, replicas, registry


def test_a_dead_replica_is_retried_on_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.exceptions import ActorDiedError

    client, engine, replicas, registry = _client(tmp_path, monkeypatch, [ActorDiedError(), {"logits": [[0.5, -0.5]]}])
    with client:
        r = client.post("/v1/classify", json={"domain": "sentiment", "inputs": "fine"})
    assert r.status_code == 200 and r.json()["version"] == "sentiment@1"
    assert replicas.calls == 2 and engine.retried == 1
    registry.close()


def test_retries_spent_answer_503_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, engine, replicas, registry = _client(tmp_path, monkeypatch, [])
    with client:
        r = client.post("/v1/classify", json={"domain": "sentiment", "inputs": "fine"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "retry" in r.json()["error"] and replicas.calls == 3  # one try + retries=2
    registry.close()


def test_a_replica_refusal_keeps_its_status_and_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = {"error": "sentiment@1 was trained on another base", "status": 409, "replica": "r0"}
    client, engine, replicas, registry = _client(tmp_path, monkeypatch, [refused])
    with client:
        r = client.post("/v1/classify", json={"domain": "sentiment", "inputs": "fine"})
    assert r.status_code == 409 and r.json()["error"] == refused["error"] and replicas.calls == 1
    registry.close()


def test_serve_run_builder_reads_its_arguments(tmp_path: Path) -> None:
    """`serve run loradock.serving.ray.app:build key=value ...`: strings typed, autoscaling passed through."""
    from loradock.serving.ray.app import build
    from loradock.serving.ray.errors import RayOptionsError

    registry, version = _version(tmp_path)
    registry.close()
    home = str(tmp_path / "home")
    app = build(
        {
            "domains": "sentiment@production",
            "home": home,
            "max_batch_size": "8",
            "spill": "2",
            "autoscaling": '{"min_replicas": 1, "max_replicas": 4}',
        }
    )
    ingress = app._bound_deployment
    config, bound_home, replica_app, retries = ingress.init_args
    replica = replica_app._bound_deployment
    assert ingress.name == "Ingress" and bound_home == home and retries == 3
    assert config.domains == ("sentiment@production",) and config.max_batch_size == 8 and config.base_model == "tiny"
    assert replica.name == "AdapterReplica"
    scaling = replica._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 4)
    router = replica._deployment_config.request_router_config
    assert router.request_router_kwargs == {"spill": 2}
    with pytest.raises(RayOptionsError, match="replicaz"):
        build({"home": home, "replicaz": "2"})
