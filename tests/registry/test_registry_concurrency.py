"""8 processes registering 50 versions each into one home."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

from loradock.registry import Registry
from tests.synthetic_adapters import write_adapter

PROCS, EACH = 8, 50


def _worker(home: str, work: str, worker: int) -> None:
    reg = Registry(home)
    # Half the workers write one domain, half the other: numbers race within each.
    domain, labels = ("sentiment", 2) if worker % 2 else ("medical", 5)
    for i in range(EACH):
        folder = write_adapter(Path(work) / f"w{worker}-{i}", labels=labels, seed=worker * 1000 + i)
        reg.register(domain, folder)


def test_concurrent_registration_is_unique_and_gapless(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(home), str(tmp_path), w)) for w in range(PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    reg = Registry(home)
    versions = reg.versions()
    assert len(versions) == PROCS * EACH
    assert len({v.sha256 for v in versions}) == PROCS * EACH
    for domain in ("medical", "sentiment"):
        numbers = sorted(v.number for v in versions if v.domain == domain)
        assert numbers == list(range(1, PROCS * EACH // 2 + 1))
    conn = sqlite3.connect(home / "registry.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert reg.verify().ok
