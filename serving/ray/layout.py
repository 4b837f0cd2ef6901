"""How many CPUs each actor of the Ray application asks for, and whether that fits the cluster.

Ray Serve waits forever for an actor it cannot place ("has taken more than 30s to be
scheduled"), so a layout that asks for more CPUs than the cluster has is refused here,
before anything is deployed, with the arithmetic and the flag to change. On a Ray this
command starts itself, the replicas' default share is sized to fit the machine.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import RayOptionsError

DEFAULT_REPLICA_CPUS = 1.0  # at most this much per replica by default: a replica runs one torch thread
MIN_REPLICA_CPUS = 0.01  # Ray's resource granularity is 1e-4; below a hundredth a replica only ever waits


@dataclass(frozen=True)
class Layout:
    """The CPUs asked for: `replicas` x `replica_cpus` plus one ingress of `ingress_cpus`."""

    replicas: int
    replica_cpus: float
    ingress_cpus: float

    @property
    def total(self) -> float:
        return self.replicas * self.replica_cpus + self.ingress_cpus


def local_cpus() -> float:
    """The CPUs a Ray started here gets: the machine's (its cgroup limit where Ray can read one)."""
    try:
        # What ray.init(num_cpus=None) would detect.
        from ray._private.utils import get_num_cpus

        return float(get_num_cpus())
    except (ImportError, AttributeError):
        return float(os.cpu_count() or 1)


def cluster_cpus() -> float:
    """The CPUs of the Ray cluster this process is connected to."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def replicas_to_place(replicas: int, autoscaling: dict[str, Any] | None) -> int:
    """Replicas that must be placed at start: --replicas, or autoscaling's initial/min count."""
    if autoscaling is None:
        return replicas
    return max(int(autoscaling.get("initial_replicas") or 0), int(autoscaling.get("min_replicas") or 0), 1)


def _fitting_share(cpus: float, replicas: int, ingress_cpus: float) -> float:
    """The largest per-replica CPU share (in hundredths, rounded down) that fits beside the ingress."""
    return math.floor((cpus - ingress_cpus) / replicas * 100) / 100


def plan(replicas: int, cpus: float, replica_cpus: float | None = None, ingress_cpus: float = 0.5) -> Layout:
    """The layout to deploy on `cpus` CPUs; RayOptionsError with the arithmetic when it cannot be placed.

    `replica_cpus=None` is the default share: 1 CPU per replica when that fits, else
    what is left after the ingress, divided among the replicas.
    """
    if replica_cpus is None:
        replica_cpus = min(DEFAULT_REPLICA_CPUS, max(_fitting_share(cpus, replicas, ingress_cpus), 0.0))
        if replica_cpus < MIN_REPLICA_CPUS:
            replica_cpus = DEFAULT_REPLICA_CPUS  # nothing fits: refuse below with the default's arithmetic
    layout = Layout(replicas, replica_cpus, ingress_cpus)
    if layout.total > cpus + 1e-9:
        raise RayOptionsError(_refusal(layout, cpus))
    return layout


def _refusal(layout: Layout, cpus: float) -> str:
    asked = (
        f"{layout.replicas} replica(s) x {layout.replica_cpus:g} CPU + ingress {layout.ingress_cpus:g} CPU "
        f"= {layout.total:g} CPUs > {cpus:g} CPUs in this Ray cluster, so Ray would wait forever to place them"
    )
    share = _fitting_share(cpus, layout.replicas, layout.ingress_cpus)
    if share >= MIN_REPLICA_CPUS:
        return f"{asked}; pass --replica-cpus {share:g} (or fewer --replicas)."
    return f"{asked}; pass a smaller --ingress-cpus or fewer --replicas, or join a bigger cluster with --address."
