"""Hot swap: an alias moves under load, new requests go to the new version, none fails."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from loradock.registry import Registry
from tests.serve_support import TEXTS, hold_worker, register, serve_config

pytestmark = pytest.mark.slow

POLL = 0.2


def register_three_medical(registry, make_peft_folder) -> dict[int, str]:
    shas = {}
    for number, seed in ((1, 1), (2, 11), (3, 12)):
        version = register(registry, make_peft_folder, "medical", seed, aliases=("production",) if number == 1 else ())
        shas[version.number] = version.sha256
    register(registry, make_peft_folder, "sentiment", 3)
    return shas


def test_alias_moves_three_times_under_load_with_zero_failures(registry, make_peft_folder) -> None:
    from loradock.serving.server import BackgroundServer

    shas = register_three_medical(registry, make_peft_folder)
    log: list[tuple[float, float, int, str | None, str | None]] = []  # start, end, status, version, sha
    stop = threading.Event()

    def hammer(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                started = time.time()
                if i % 3 == 2:
                    r = client.post("/models/medical", json={"inputs": TEXTS[i % len(TEXTS)]})
                    version, sha = r.headers.get("x-adapter-version"), r.headers.get("x-adapter-sha256")
                else:
                    domain = "sentiment" if i == 0 else "medical"
                    r = client.post("/v1/classify", json={"domain": domain, "inputs": [TEXTS[i % len(TEXTS)]]})
                    body = r.json() if r.status_code == 200 else {}
                    version, sha = body.get("version"), body.get("sha256")
                log.append((started, time.time(), r.status_code, version, sha))

    with BackgroundServer(
        serve_config(domains=("medical@production", "sentiment@production"), poll_interval=POLL), registry
    ) as server:
        engine = server.app.state.engine
        clients = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
        for t in clients:
            t.start()
        time.sleep(0.5)
        mover = Registry(registry.home)  # another process's view: the CLI moving the alias
        switches = []
        for target in (2, 3, 1):
            moved_at = time.time()
            mover.set_alias("medical", "production", target)
            deadline = moved_at + POLL + 10
            while engine.served["medical"].current.version.number != target:
                assert time.time() < deadline, f"medical@{target} never swapped in"
                time.sleep(0.01)
            swapped_at = engine.served["medical"].swapped_at
            while not any(s > swapped_at and v == f"medical@{target}" for s, _, _, v, _ in list(log)):
                assert time.time() < deadline, f"no response from medical@{target} after the swap"
                time.sleep(0.02)
            switches.append((target, moved_at, swapped_at))
            time.sleep(0.5)
        stop.set()
        for t in clients:
            t.join(60)
        mover.close()
        resident = {e.version.ref for e in engine.cache.entries()}

    assert len(log) > 20
    failures = [row for row in log if row[2] != 200]
    assert failures == []
    for _, _, _, version, sha in log:  # every response names the version that served it, by hash too
        if version.startswith("medical@"):
            assert sha == shas[int(version.split("@")[1])]
    for i, (target, moved_at, swapped_at) in enumerate(switches):
        # The swap lands within the poll interval (plus CPU slack on a shared runner) ...
        assert swapped_at - moved_at < POLL + 1.5, (target, swapped_at - moved_at)
        # ... and every medical request that starts after it, until the next move, gets the new version.
        until = switches[i + 1][1] if i + 1 < len(switches) else float("inf")
        late = {v for s, _, _, v, _ in log if swapped_at < s < until and v and v.startswith("medical")}
        assert late == {f"medical@{target}"}, (target, late)
    assert resident == {"medical@1", "sentiment@1"}  # medical@2 and @3 were released after their swaps


def test_in_flight_requests_finish_on_the_old_version(registry, make_peft_folder) -> None:
    from loradock.serving.server import BackgroundServer

    shas = register_three_medical(registry, make_peft_folder)
    config = serve_config(domains=("medical@production",), poll_interval=3600)  # only the reload endpoint swaps
    with BackgroundServer(config, registry) as server:
        engine = server.app.state.engine
        gate, entered = hold_worker(engine)
        results: dict = {}
        before = threading.Thread(
            target=lambda: results.update(
                old=httpx.post(
                    f"{server.url}/v1/classify", json={"domain": "medical", "inputs": [TEXTS[0]]}, timeout=60
                )
            )
        )
        before.start()
        assert entered.wait(30)
        registry.set_alias("medical", "production", 2)
        swaps = httpx.post(f"{server.url}/v1/admin/reload", timeout=60).json()["swaps"]
        assert swaps == [{"domain": "medical", "old": "medical@1", "new": "medical@2", "sha256": shas[2]}]
        assert engine.cache.entry(shas[1]) is not None  # still held by the request in flight
        after = threading.Thread(
            target=lambda: results.update(
                new=httpx.post(
                    f"{server.url}/v1/classify", json={"domain": "medical", "inputs": [TEXTS[0]]}, timeout=60
                )
            )
        )
        after.start()
        gate.set()
        before.join(60), after.join(60)
        assert results["old"].json()["version"] == "medical@1" and results["new"].json()["version"] == "medical@2"
        assert results["old"].json()["results"] != results["new"].json()["results"]
        assert engine.cache.entry(shas[1]) is None  # released once its last request finished
        listing = httpx.get(f"{server.url}/v1/domains").json()["domains"][0]
        assert listing["version"] == "medical@2" and listing["sha256"] == shas[2]


def test_bad_new_version_keeps_the_old_one_serving(registry, make_peft_folder) -> None:
    from loradock.serving.server import BackgroundServer

    register_three_medical(registry, make_peft_folder)
    register(registry, make_peft_folder, "medical", 13, aliases=(), fingerprint="sha256:" + "f" * 64)
    with BackgroundServer(serve_config(domains=("medical@production",), poll_interval=3600), registry) as server:
        registry.set_alias("medical", "production", 4)
        swaps = httpx.post(f"{server.url}/v1/admin/reload", timeout=60).json()["swaps"]
        assert "medical@4 was trained on base" in swaps[0]["error"]
        r = httpx.post(f"{server.url}/v1/classify", json={"domain": "medical", "inputs": ["x"]}, timeout=30)
        assert r.status_code == 200 and r.json()["version"] == "medical@1"
        assert "trained on base" in httpx.get(f"{server.url}/v1/domains").json()["domains"][0]["last_error"]
