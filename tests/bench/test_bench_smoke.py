"""Benches cannot rot: each bench's --smoke mode runs end to end in a subprocess.

A bench is only run by hand before a release, so a renamed attribute used to
break it silently (bench/serve.py crashed after its throughput rounds on
`AdapterWeights.nbytes`). The smoke modes use tiny counts and offline texts.
Every bench under bench/ has a case here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(name: str, timeout: int = 600) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"bench/{name} --smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_registry_bench_smoke() -> None:
    out = run_bench("registry.py")
    assert "adapters list" in out and "adapters show medical@production" in out


@pytest.mark.slow
def test_export_bench_smoke() -> None:
    out = run_bench("export.py")
    assert "| ORT int8 |" in out and "| torch eager + adapter (PEFT) |" in out


@pytest.mark.slow
def test_serve_bench_smoke() -> None:
    out = run_bench("serve.py")
    assert "# Serving benchmark" in out
    assert "fp32 torch 2." in out and "__import__" not in out  # the machine line is formatted, not literal


@pytest.mark.slow
def test_train_bench_smoke() -> None:
    out = run_bench("train.py")
    assert "| 1 | own |" in out and "| 1 | trainer |" in out and "Trainer / own throughput" in out


@pytest.mark.slow
def test_ray_bench_smoke() -> None:
    pytest.importorskip("ray.serve", reason="the Ray extra is not installed: pip install -e '.[ray]'")
    out = run_bench("ray.py")
    assert "ours / stock: throughput" in out
