"""A local Ray instance with the loradock application on 2 replicas, for tests/serving/test_ray_*.py.

Synthetic adapters (numpy, tests/synthetic_adapters.py) shaped for the embedded MiniLM base;
the replicas run with ADAPTERS_HOME pointing at an empty folder.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from loradock.registry import DEFAULT_BASE, PRESETS, Registry, VersionInfo

from .synthetic_adapters import write_adapter

KEY_ENV, KEY = "LORADOCK_RAY_TEST_KEY", "ray-test-token"
APP = "loradock"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_minilm(registry: Registry, work: Path, domain: str, seed: int, aliases: tuple[str, ...] = ()) -> Any:
    """A synthetic LoRA + head on MiniLM's query/value (384 wide, 6 layers), with its base fingerprint."""
    from loradock.adapters.base import base_info

    folder = write_adapter(
        work / f"{domain}-{seed}", labels=len(PRESETS[domain].labels), hidden=384, layers=6, r=4, seed=seed
    )
    info = VersionInfo(base_model=DEFAULT_BASE, base_fingerprint=base_info(DEFAULT_BASE)["base_fingerprint"])
    return registry.register(domain, folder, info, aliases=list(aliases))


def replica_ids(deployment: str = "AdapterReplica") -> list[str]:
    """Names of the live replica actors of `deployment` (namespace "serve")."""
    import ray

    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and f"#{deployment}#" in a["name"]
    )


def running_replicas(deployment: str = "AdapterReplica") -> int:
    from ray import serve

    status = serve.status().applications[APP].deployments[deployment]
    return int(status.replica_states.get("RUNNING", 0))


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def replica_stats(count: int = 2, tries: int = 40) -> dict[str, dict]:
    """`stats()` of each replica: probes with distinct multiplexed ids spread over the replicas."""
    from ray import serve

    handle = serve.get_deployment_handle("AdapterReplica", app_name=APP)
    seen: dict[str, dict] = {}
    for i in range(tries):
        out = handle.options(multiplexed_model_id=f"probe-{i}").stats.remote().result(timeout_s=30)
        seen[out["replica"]] = out
        if len(seen) >= count:
            break
    return seen
