"""Ray layouts that fit the machine (issue 21.8) and replica scratch folders that do not pile up (issue 22.7).

No Ray cluster here: the layout arithmetic, the CLI refusing before Ray starts, and the
scratch-folder bookkeeping are plain Python (tests/serving/test_ray_serve.py runs the real thing).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.serving.ray import layout
from loradock.serving.ray.app import RayOptions, fit
from loradock.serving.ray.errors import RayOptionsError
from loradock.serving.ray.shipping import (
    SCRATCH_PREFIX,
    ShippedAdapters,
    remove_stale_scratch,
)


@pytest.mark.parametrize(
    ("replicas", "cpus", "share"),
    [
        (2, 2, 0.75),  # the 2-core machine: 2 x 0.75 + 0.5 = 2
        (3, 2, 0.5),
        (2, 16, 1.0),  # room to spare: 1 CPU each, as before
        (1, 1, 0.5),
    ],
)
def test_the_default_share_fits_the_node(replicas, cpus, share) -> None:
    options = fit(RayOptions(replicas=replicas), cpus)
    assert options.replica_cpus == share
    assert replicas * options.replica_cpus + options.ingress_cpus <= cpus


def test_a_layout_that_cannot_be_placed_names_the_arithmetic_and_the_flag() -> None:
    with pytest.raises(RayOptionsError) as info:
        fit(RayOptions(replicas=2, replica_cpus=1.0), 2)
    assert str(info.value).startswith("2 replica(s) x 1 CPU + ingress 0.5 CPU = 2.5 CPUs > 2 CPUs")
    assert "pass --replica-cpus 0.75" in str(info.value)
    with pytest.raises(RayOptionsError, match=r"ingress 2 CPU = 4 CPUs > 2 CPUs.*smaller --ingress-cpus"):
        fit(RayOptions(replicas=2, ingress_cpus=2.0), 2)
    with pytest.raises(RayOptionsError, match=r"200 replica\(s\) x 1 CPU .* fewer --replicas"):
        fit(RayOptions(replicas=200), 2)


def test_autoscaling_is_checked_at_its_starting_count() -> None:
    assert fit(RayOptions(autoscaling={"min_replicas": 1, "max_replicas": 8}), 2).replica_cpus == 1.0
    with pytest.raises(RayOptionsError, match=r"3 replica\(s\)"):
        fit(RayOptions(replica_cpus=1.0, autoscaling={"initial_replicas": 3}), 2)
    with pytest.raises(RayOptionsError, match="JSON object with integer replica counts"):
        RayOptions(autoscaling=[1])


@pytest.fixture
def minilm_registry(registry, tmp_path):
    from tests.ray_support import register_minilm

    register_minilm(registry, tmp_path, "sentiment", 1, ("production",))
    return registry


def test_serve_ray_refuses_an_unplaceable_layout_before_ray_starts(minilm_registry, monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(layout, "local_cpus", lambda: 2.0)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a layout that cannot be placed")

    monkeypatch.setattr(ray, "init", no_ray)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--ray", "--replicas", "2", "--replica-cpus", "1", "--port", "0"])
    assert result.exit_code == 5, result.output
    assert result.output.strip().splitlines() == [
        (
            "Error: 2 replica(s) x 1 CPU + ingress 0.5 CPU = 2.5 CPUs > 2 CPUs in this Ray cluster, so Ray would wait "
            "forever to place them; pass --replica-cpus 0.75 (or fewer --replicas)."
        )
    ]


def test_serve_ray_defaults_fit_a_two_core_machine(minilm_registry, monkeypatch) -> None:
    pytest.importorskip("ray")
    from loradock.serving.ray import app

    monkeypatch.setattr(layout, "local_cpus", lambda: 2.0)
    seen = {}

    def fake_run(config, options, home, announce=None):
        seen["options"] = app.fit(options, layout.local_cpus())

    monkeypatch.setattr(app, "run", fake_run)
    result = CliRunner().invoke(cli, ["serve", "--ray", "--replicas", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (seen["options"].replica_cpus, seen["options"].ingress_cpus) == (0.75, 0.5)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_scratch_folders_are_removed_live_ones_kept(tmp_path) -> None:
    dead = tmp_path / f"{SCRATCH_PREFIX}{_dead_pid()}-abc"
    live = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-def"
    old_legacy, new_legacy = tmp_path / f"{SCRATCH_PREFIX}old12345", tmp_path / f"{SCRATCH_PREFIX}new12345"
    other = tmp_path / "someone-elses"
    for folder in (dead, live, old_legacy, new_legacy, other):
        (folder / "sha").mkdir(parents=True)
        (folder / "sha" / "adapter_model.safetensors").write_bytes(b"x" * 1000)
    hour_ago = time.time() - 2 * 3600
    os.utime(old_legacy, (hour_ago, hour_ago))
    removed = remove_stale_scratch(tmp_path)
    assert sorted(removed) == sorted([dead, old_legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, new_legacy.name, other.name])


def test_a_replica_store_removes_its_scratch_folder_when_it_stops(tmp_path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"{SCRATCH_PREFIX}{_dead_pid()}-left"
    stale.mkdir()
    store = ShippedAdapters()
    assert store.home.parent == tmp_path and store.home.name.startswith(f"{SCRATCH_PREFIX}{os.getpid()}-")
    assert not stale.exists()  # cleaned at start
    (store.home / "blob").write_bytes(b"x")
    store.close()
    assert list(tmp_path.iterdir()) == []
    given = tmp_path / "given"
    ShippedAdapters(given).close()
    assert given.is_dir()  # a root the caller chose is the caller's


def test_a_replica_removes_its_store_on_shutdown(tmp_path, monkeypatch) -> None:
    import tempfile

    from loradock.serving.ray.replica import AdapterReplica

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class Engine:
        closed = False

        def close(self) -> None:
            Engine.closed = True

    replica = AdapterReplica.__new__(AdapterReplica)  # what Serve's shutdown calls: __del__
    replica.engine, replica.store = Engine(), ShippedAdapters()
    home = replica.store.home
    replica.__del__()
    assert Engine.closed and not Path(home).exists()


@pytest.mark.slow
def test_serve_ray_with_its_defaults_becomes_healthy_on_two_cpus(tmp_path) -> None:
    """The issue's command on a 2-CPU Ray (whatever this machine has): it serves, and SIGTERM leaves no scratch."""
    pytest.importorskip("ray.serve")
    import signal
    import tempfile
    import threading

    import httpx

    from loradock.registry import Registry
    from tests.ray_support import free_port, register_minilm

    home = tmp_path / "home"
    with Registry(home) as registry:
        register_minilm(registry, tmp_path, "sentiment", 1, ("production",))
    port = free_port()

    def scratch() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*")}

    two_cpus = (
        "import sys; from loradock.serving.ray import layout; layout.local_cpus = lambda: 2.0; "
        "from loradock.cli.main import cli; sys.exit(cli())"
    )
    env = {
        **os.environ,
        "ADAPTERS_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "RAY_ADDRESS": "",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    server = subprocess.Popen(
        [sys.executable, "-c", two_cpus, "serve", "--ray", "--replicas", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("Serving ") for line in lines):
            assert server.poll() is None and time.monotonic() < deadline, "".join(lines[-30:])
            time.sleep(0.5)
        announced = next(line for line in lines if line.startswith("Serving "))
        assert "(2 replica(s) x 0.75 CPU, ingress 0.5 CPU)" in announced
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/classify", json={"domain": "sentiment", "inputs": ["fine"]}, timeout=60
        )
        assert reply.status_code == 200
        import psutil  # a Ray dependency

        pids = {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
        owner = {name: re.match(rf"{SCRATCH_PREFIX}(\d+)-", name) for name in scratch()}
        ours = {name for name, m in owner.items() if m and int(m.group(1)) in pids}
        assert len(ours) == 2  # one scratch folder per replica, named by its pid (other sessions may have theirs)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        reader.join(timeout=10)
    assert server.returncode == 0, "".join(lines[-30:])
    assert ours & scratch() == set(), "replica scratch folders left behind"
