"""`adapters serve --backend onnx`: mixed batches, the same answers as torch, hot swap, views and metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from loradock.registry import Domain, Registry, VersionInfo
from tests.onnx_multi_support import TEXTS, peft_folder, tiny_base

LABELS = {"two": ("neg", "pos"), "three": ("a", "b", "c"), "five": ("l1", "l2", "l3", "l4", "l5")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_base(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture
def served(registry: Registry, tiny: str, tmp_path: Path) -> Registry:
    from loradock.adapters.base import base_info

    info = VersionInfo(base_model=tiny, base_fingerprint=base_info(tiny)["base_fingerprint"])
    for seed, (domain, labels) in enumerate(LABELS.items()):
        registry.add_domain(Domain(name=domain, labels=labels, base_model=tiny))
        registry.register(
            domain, peft_folder(tiny, tmp_path / domain, labels, 2 + 2 * seed, seed=seed), info, aliases=["production"]
        )
    return registry


def config(tiny: str, backend: str, **overrides):
    from loradock.serving.config import ServeConfig

    values = {
        "domains": tuple(f"{d}@production" for d in LABELS),
        "port": 0,
        "device": "cpu",
        "base_model": tiny,
        "backend": backend,
        "poll_interval": 0.2,
        "max_wait_ms": 2.0,
        "workers": 1,
    }  # batch counts below assume one worker; test_serve_workers.py covers more
    return ServeConfig(**{**values, **overrides})


def mixed_logits(engine, domains: list[str]) -> list[np.ndarray]:
    """All rows in one mixed batch: it closes once full (max_batch_size rows) or after max_wait_ms."""
    from tests.serve_support import hold_worker

    gate, _ = hold_worker(engine)

    async def go() -> list:
        entries = [engine.route(d) for d in domains]
        tasks = [asyncio.ensure_future(engine.predict(e, [t])) for e, t in zip(entries, TEXTS)]
        await asyncio.sleep(0.3)
        gate.set()
        out = await asyncio.gather(*tasks)
        for e in entries:
            engine.cache.release(e)
        return [np.asarray(p[0].logits, dtype=np.float32) for p in out]

    engine.start()
    try:
        return asyncio.run(go())
    finally:
        engine.close()


def test_onnx_engine_answers_mixed_batches_like_the_torch_engine(served: Registry, tiny: str) -> None:
    from loradock.serving.backends import Backend
    from loradock.serving.engine import ServingEngine

    domains = [list(LABELS)[i % 3] for i in range(len(TEXTS))]
    onnx_engine = ServingEngine(config(tiny, "onnx", max_batch_size=len(TEXTS), max_wait_ms=1000.0), served)
    assert onnx_engine.model.backend == "onnx"
    got = mixed_logits(onnx_engine, domains)
    assert onnx_engine.batcher.batches == 1  # one mixed batch over three adapters and heads
    torch_engine = ServingEngine(config(tiny, "torch", max_batch_size=len(TEXTS), max_wait_ms=1000.0), served)
    want = mixed_logits(torch_engine, domains)
    assert all(isinstance(e.model, Backend) for e in (onnx_engine, torch_engine))  # one interface, both backends
    assert torch_engine.model.describe(None) == {"backend": "torch"} and torch_engine.model.name == "torch"
    for g, w, d in zip(got, want, domains):
        assert g.shape == (len(LABELS[d]),)
        assert np.abs(g - np.asarray(w)).max() <= 1e-4


def test_auto_uses_onnx_once_the_graph_exists(served: Registry, tiny: str) -> None:
    from loradock.adapters.export.onnx_multi import ensure_graph
    from loradock.serving.backends import choose_backend

    assert choose_backend("auto", "cpu", served.home, tiny) == "torch"
    ensure_graph(served.home, tiny)
    assert choose_backend("auto", "cpu", served.home, tiny) == "onnx"
    assert choose_backend("auto", "cuda", served.home, tiny) == "torch"


def test_bad_backend_is_refused_at_config(tiny: str) -> None:
    from loradock.serving.errors import ServeConfigError

    with pytest.raises(ServeConfigError, match="'tensorrt'"):
        config(tiny, "tensorrt")


def test_http_views_metrics_and_hot_swap_on_onnx(served: Registry, tiny: str, tmp_path: Path) -> None:
    from loradock.adapters.base import base_info
    from loradock.serving.server import BackgroundServer

    with BackgroundServer(config(tiny, "onnx"), served) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            r = client.post("/v1/classify", json={"domain": "five", "inputs": TEXTS[:2]})
            assert r.status_code == 200, r.text
            assert r.json()["version"] == "five@1"
            rows = {row["domain"]: row for row in client.get("/v1/domains").json()["domains"]}
            assert {row["backend"] for row in rows.values()} == {"onnx"}
            assert rows["two"]["precision"] == "fp32"  # no eval split: not gated, so fp32
            assert "no labelled eval split" in rows["two"]["int8_gate"]["reason"]
            metrics = client.get("/metrics").text
            assert 'loradock_backend_info{backend="onnx-int8"} 1.0' in metrics
            assert 'loradock_backend_rows_total{backend="onnx",precision="fp32"} 2.0' in metrics
            # Hot swap: a new version is an input to the same graph, never a re-export.
            info = VersionInfo(base_model=tiny, base_fingerprint=base_info(tiny)["base_fingerprint"])
            stamps = {p: p.stat().st_mtime_ns for p in (served.home / "graphs").rglob("*.onnx")}
            served.register(
                "five", peft_folder(tiny, tmp_path / "five-2", LABELS["five"], 3, seed=42), info, aliases=["production"]
            )
            client.post("/v1/admin/reload")
            r = client.post("/v1/classify", json={"domain": "five", "inputs": TEXTS[:1]})
            assert r.json()["version"] == "five@2"
            assert {p: p.stat().st_mtime_ns for p in (served.home / "graphs").rglob("*.onnx")} == stamps
