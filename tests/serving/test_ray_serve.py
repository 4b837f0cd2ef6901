"""The Ray Serve application on a local Ray instance (2 replicas, small CPU shares).

One deployment for the whole module (starting Ray and the replicas dominates the time):
answers equal `adapters serve`'s, replicas serve from an empty ADAPTERS_HOME, an alias moves
under load with zero failures, and a replica killed under load costs clients nothing.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

ray = pytest.importorskip("ray", reason="ray[serve] is not installed: pip install 'loradock[ray]'")
pytest.importorskip("ray.serve", reason="ray[serve] is not installed: pip install 'loradock[ray]'")

from loradock.registry import Registry
from tests.ray_support import (
    KEY,
    KEY_ENV,
    free_port,
    register_minilm,
    replica_ids,
    replica_stats,
    running_replicas,
    wait_for,
)

pytestmark = pytest.mark.slow

TEXTS = [
    "Crushing chest pain radiating to the left arm.",
    "itchy rash",
    "A warm, funny and moving film.",
    "Dull.",
    "Shortness of breath and wheezing at night, worse after exercise and cold air.",
]
POLL = 0.2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Registry (medical@1 production, medical@2, sentiment@1 production), Ray, the app, a reference app."""
    import torch
    from fastapi.testclient import TestClient
    from ray import serve

    from loradock.serving.app import create_app
    from loradock.serving.config import ServeConfig
    from loradock.serving.ray.app import APP_NAME, RayOptions, build_app
    from tests.serve_support import offline

    with pytest.MonkeyPatch.context() as mp:
        offline(mp)
        mp.setenv(KEY_ENV, KEY)
        work = tmp_path_factory.mktemp("ray")
        home, empty = work / "home", work / "empty-home"
        empty.mkdir()
        registry = Registry(home)
        versions = {
            "medical@1": register_minilm(registry, work, "medical", 1, ("production",)),
            "medical@2": register_minilm(registry, work, "medical", 2),
            "sentiment@1": register_minilm(registry, work, "sentiment", 3, ("production",)),
        }
        config = ServeConfig(
            domains=("medical@production", "sentiment@production"),
            device="cpu",
            port=0,
            poll_interval=POLL,
            max_wait_ms=2.0,
            api_key_env=KEY_ENV,
        )
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}},
        )
        port = free_port()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in each replica (threads=1): same kernels, same sums, same bits
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            options = RayOptions(
                replicas=2, replica_cpus=0.5, ingress_cpus=0.25, retries=4, replica_env={"ADAPTERS_HOME": str(empty)}
            )
            serve.run(build_app(config, options, str(home)), name=APP_NAME, route_prefix="/")
            reference = create_app(config, Registry(home))
            with TestClient(reference, headers={"Authorization": f"Bearer {KEY}"}) as ref:
                yield {
                    "url": f"http://127.0.0.1:{port}",
                    "ref": ref,
                    "registry": registry,
                    "home": home,
                    "empty": empty,
                    "versions": versions,
                }
        finally:
            torch.set_num_threads(threads)
            serve.shutdown()
            ray.shutdown()
            registry.close()


def client(cluster, **kw) -> httpx.Client:
    return httpx.Client(base_url=cluster["url"], headers={"Authorization": f"Bearer {KEY}"}, timeout=60, **kw)


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/v1/classify", {"domain": "medical", "inputs": TEXTS}),
        ("POST", "/v1/classify", {"domain": "sentiment", "inputs": TEXTS[2], "top_k": 1}),
        ("POST", "/v1/classify", {"model": "medical@2", "input": TEXTS[:2]}),
        ("POST", "/v1/classify", {"domain": "medical", "inputs": TEXTS[:1], "version": "1"}),
        ("POST", "/models/sentiment", {"inputs": TEXTS[:3], "parameters": {"function_to_apply": "none"}}),
        ("POST", "/v1/classify", {"domain": "legal", "inputs": ["x"]}),  # 404 naming the served domains
        ("POST", "/v1/classify", {"domain": "medical", "inputs": []}),  # 422
        ("POST", "/v1/classify", {"domain": "medical", "inputs": ["x"], "version": "9"}),  # 404 no such version
        ("GET", "/v1/models", None),
    ],
)
def test_answers_equal_adapters_serve(cluster, method, path, body) -> None:
    with client(cluster) as c:
        ours = c.request(method, path, json=body)
    theirs = cluster["ref"].request(method, path, json=body)
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
    a, b = ours.json(), theirs.json()
    if path == "/v1/models":  # `created` is when each server pinned the version: it differs by design
        for card in a["data"] + b["data"]:
            card.pop("created")
    assert a == b  # logits bit for bit: the same engine runs in each replica
    for header in ("x-adapter-version", "x-adapter-sha256", "content-type"):
        assert ours.headers.get(header) == theirs.headers.get(header)


def test_auth_and_health_as_adapters_serve(cluster) -> None:
    with httpx.Client(base_url=cluster["url"], timeout=60) as anonymous:
        denied = anonymous.post("/v1/classify", json={"domain": "medical", "inputs": ["x"]})
        health = anonymous.get("/health")
    reference = cluster["ref"].post(
        "/v1/classify", json={"domain": "medical", "inputs": ["x"]}, headers={"Authorization": "Bearer wrong"}
    )
    assert denied.status_code == reference.status_code == 401
    assert denied.json() == reference.json() and denied.headers["www-authenticate"] == "Bearer"
    assert health.status_code == 200 and "domains" not in health.json()


def test_replicas_serve_from_an_empty_adapters_home(cluster) -> None:
    with client(cluster) as c:  # distinct versions spread over both replicas
        for body in (
            {"domain": "medical", "inputs": TEXTS},
            {"model": "medical@2", "input": TEXTS},
            {"domain": "sentiment", "inputs": TEXTS},
        ):
            assert c.post("/v1/classify", json=body).status_code == 200
    stats = replica_stats()
    assert len(stats) == 2, stats
    assert {s["adapters_home"] for s in stats.values()} == {str(cluster["empty"])}
    # Three versions served, each one's bytes fetched through the object store by the replica it went to.
    assert sum(s["received"] for s in stats.values()) >= 3 and sum(s["loads"] for s in stats.values()) >= 3
    assert list(cluster["empty"].iterdir()) == []  # no registry was opened or written there


def test_alias_move_under_load_zero_failures(cluster) -> None:
    log: list[tuple[float, float, int, str | None]] = []
    stop = threading.Event()

    def hammer(i: int) -> None:
        with client(cluster) as c:
            while not stop.is_set():
                started = time.time()
                r = c.post("/v1/classify", json={"domain": "medical", "inputs": [TEXTS[i % len(TEXTS)]]})
                log.append((started, time.time(), r.status_code, r.json().get("version")))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    mover = Registry(cluster["home"])  # another process's view: the CLI moving the alias
    try:
        for target in (2, 1):
            time.sleep(0.5)
            moved_at = time.time()
            mover.set_alias("medical", "production", target)
            wait_for(
                lambda m=moved_at, t=target: any(s > m and v == f"medical@{t}" for s, _, _, v in list(log)),
                30,
                f"medical@{target} served",
            )
            first = min(end for s, end, _, v in list(log) if s > moved_at and v == f"medical@{target}")
            time.sleep(1.0)
            after = [v for started, _, _, v in list(log) if started > first]
            assert after and set(after) == {f"medical@{target}"}  # once swapped, never back
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        mover.close()
    assert len(log) > 20
    assert [row for row in log if row[2] != 200] == []


def test_replica_killed_under_load_zero_client_failures(cluster) -> None:
    registry = cluster["registry"]
    before = ([v.sha256 for v in registry.versions()], registry.aliases(), registry.last_event_id())
    victim = replica_ids()[0]
    log: list[int] = []
    stop = threading.Event()

    def hammer(i: int) -> None:
        with client(cluster) as c:
            while not stop.is_set():
                domain = "sentiment" if i % 2 else "medical"
                log.append(c.post("/v1/classify", json={"domain": domain, "inputs": TEXTS[i : i + 2]}).status_code)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        served_before_kill = len(log)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        time.sleep(3.0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert served_before_kill > 0 and len(log) > served_before_kill
    assert [s for s in log if s != 200] == []
    wait_for(lambda: victim not in replica_ids() and running_replicas() == 2, 180, "Ray to replace the replica")
    after = ([v.sha256 for v in registry.versions()], registry.aliases(), registry.last_event_id())
    assert after == before  # nothing in the registry changed
    with client(cluster) as c:
        assert c.post("/v1/classify", json={"domain": "medical", "inputs": TEXTS}).status_code == 200
