"""Several batch workers: batches run at once, never over the device slots, same answers as one worker."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from loradock.registry import Domain, Registry, VersionInfo
from loradock.serving.batcher import Job, MicroBatcher
from loradock.serving.config import ServeConfig
from loradock.serving.errors import ServeConfigError
from tests.onnx_multi_support import peft_folder, tiny_base


@dataclass(frozen=True)
class Key:
    sha256: str


def test_two_workers_run_two_batches_at_once() -> None:
    both = threading.Barrier(2, timeout=10)

    def run(jobs: list[Job]) -> list[int]:
        both.wait()  # raises BrokenBarrierError unless a second batch is running meanwhile
        return [len(jobs)] * len(jobs)

    batcher = MicroBatcher(run, max_batch_size=1, max_wait_ms=0, workers=2)
    batcher.start()
    try:
        jobs = [Job([1], Key("a")), Job([2], Key("b"))]
        batcher.submit(jobs)
        assert [j.future.result(timeout=10) for j in jobs] == [1, 1]
        assert batcher.alive
    finally:
        batcher.stop()


def test_a_batch_waits_when_its_adapter_does_not_fit_beside_a_running_one() -> None:
    running: set[str] = set()
    overlaps: list[set[str]] = []
    lock = threading.Lock()
    release = threading.Event()

    def run(jobs: list[Job]) -> list[str]:
        shas = {j.adapter.sha256 for j in jobs}
        with lock:
            if running:
                overlaps.append(running | shas)
            running.update(shas)
        if "a" in shas:
            release.wait(10)
        time.sleep(0.05)
        with lock:
            running.difference_update(shas)
        return [j.adapter.sha256 for j in jobs]

    # Two device slots: "a" and "b" fit together, "c" does not fit beside both.
    batcher = MicroBatcher(run, max_batch_size=2, max_wait_ms=20, workers=2, fits=lambda shas: len(shas) <= 2)
    batcher.start()
    try:
        first = [Job([1], Key("a")), Job([1], Key("b"))]
        batcher.submit(first)
        time.sleep(0.2)  # the first batch (a, b) is running and held
        later = [Job([1], Key("c"))]
        batcher.submit(later)
        time.sleep(0.3)
        assert not later[0].future.done()  # waits: c does not fit beside a and b
        release.set()
        assert later[0].future.result(timeout=10) == "c"
        assert [j.future.result(timeout=10) for j in first] == ["a", "b"]
    finally:
        batcher.stop()
    assert all(len(s) <= 2 for s in overlaps), overlaps


def test_a_failing_batch_frees_its_slots_for_the_next() -> None:
    def run(jobs: list[Job]) -> list[str]:
        if jobs[0].ids == [0]:
            raise RuntimeError("boom")
        return ["ok"] * len(jobs)

    batcher = MicroBatcher(run, max_batch_size=1, max_wait_ms=0, workers=2, fits=lambda shas: len(shas) <= 1)
    batcher.start()
    try:
        bad, good = Job([0], Key("a")), Job([1], Key("b"))
        batcher.submit([bad])
        with pytest.raises(RuntimeError, match="boom"):
            bad.future.result(timeout=10)
        batcher.submit([good])
        assert good.future.result(timeout=10) == "ok"
    finally:
        batcher.stop()


def test_worker_defaults_and_bad_values() -> None:
    cores = os.cpu_count() or 1
    assert ServeConfig().batch_workers("torch") == 1
    assert ServeConfig().batch_workers("onnx") == min(4, cores)
    assert ServeConfig(workers=3).batch_workers("torch") == 3
    assert ServeConfig().onnx_threads(2) == max(1, cores // 2)
    with pytest.raises(ServeConfigError, match="workers must be 1-64, got 0"):
        ServeConfig(workers=0)
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        MicroBatcher(lambda jobs: [], workers=0)


LABELS = {"alpha": ("no", "yes"), "beta": ("x", "y", "z")}
TEXTS = [f"text number {i} " + "word " * (i % 7) for i in range(24)]


def test_onnx_engine_with_two_workers_answers_like_one(registry: Registry, tmp_path: Path) -> None:
    from loradock.adapters.base import base_info
    from loradock.serving.engine import ServingEngine

    tiny = str(tiny_base(tmp_path / "tiny"))
    info = VersionInfo(base_model=tiny, base_fingerprint=base_info(tiny)["base_fingerprint"])
    for seed, (domain, labels) in enumerate(LABELS.items()):
        registry.add_domain(Domain(name=domain, labels=labels, base_model=tiny))
        registry.register(
            domain, peft_folder(tiny, tmp_path / domain, labels, 4, seed=seed), info, aliases=["production"]
        )

    def answers(workers: int) -> list[np.ndarray]:
        config = ServeConfig(
            domains=tuple(f"{d}@production" for d in LABELS),
            device="cpu",
            base_model=tiny,
            backend="onnx",
            workers=workers,
            max_batch_size=4,
            max_wait_ms=1.0,
        )
        engine = ServingEngine(config, registry)
        assert engine.batcher.workers == workers

        async def go() -> list[np.ndarray]:
            domains = [list(LABELS)[i % 2] for i in range(len(TEXTS))]
            entries = [engine.route(d) for d in domains]
            out = await asyncio.gather(*(engine.predict(e, [t]) for e, t in zip(entries, TEXTS)))
            for e in entries:
                engine.cache.release(e)
            return [np.asarray(p[0].logits) for p in out]

        engine.start()
        try:
            return asyncio.run(go())
        finally:
            engine.close()

    one, two = answers(1), answers(2)
    for a, b in zip(one, two):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-5
