"""The live page's numbers: engine snapshots turned into rates and latency percentiles over a window.

Counters in the engine and the Prometheus histograms are cumulative; the
sampler keeps a short history of them so each refresh can report what
happened in the last few seconds rather than since the server started.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loradock.registry import Registry

    from ..engine import ServingEngine

WINDOW_S = 10.0


def _histogram(metric: Any, label: str | None = None) -> dict[str, list[tuple[float, float]]]:
    """Cumulative buckets [(upper bound, count)] per label value (or under "" without labels)."""
    out: dict[str, list[tuple[float, float]]] = {}
    if metric is None:
        return out
    for family in metric.collect():
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            key = sample.labels.get(label, "") if label else ""
            out.setdefault(key, []).append((float(sample.labels["le"]), float(sample.value)))
    for buckets in out.values():
        buckets.sort()
    return out


def _minus(new: list[tuple[float, float]], old: list[tuple[float, float]] | None) -> list[tuple[float, float]]:
    before = dict(old or [])
    return [(le, count - before.get(le, 0.0)) for le, count in new]


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket holding the q-th observation."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):  # past the last finite bound: report that bound
                return lower
            width = count - below
            return lower + (le - lower) * ((rank - below) / width if width else 1.0)
        lower, below = le, count
    return lower


class LiveSampler:
    """Samples the engine on demand; thread-safe; keeps about a minute of history."""

    def __init__(self, engine: ServingEngine, registry: Registry, window_s: float = WINDOW_S) -> None:
        self.engine = engine
        self.registry = registry
        self.window_s = window_s
        self._history: deque[dict[str, Any]] = deque(maxlen=120)
        self._lock = threading.Lock()
        self._refs: dict[str, str] = {}
        self.sample()

    def _raw(self) -> dict[str, Any]:
        snap = self.engine.snapshot()
        metrics = getattr(self.engine, "metrics", None)
        return {
            "t": time.monotonic(),
            "snap": snap,
            "latency": _histogram(getattr(metrics, "latency", None), "domain"),
            "batch": _histogram(getattr(metrics, "batch_size", None)).get("", []),
        }

    def _baseline(self, now: float) -> dict[str, Any] | None:
        """The newest sample at least a window old, else the oldest one there is."""
        older = [s for s in self._history if now - s["t"] >= self.window_s]
        if older:
            return older[-1]
        return self._history[0] if self._history else None

    def _ref_of(self, sha: str) -> str:
        if sha not in self._refs:  # evicted entries are gone from the cache: name them from the registry
            self._refs = {v.sha256: v.ref for v in self.registry.versions()}
        return self._refs.get(sha, sha[:12])

    def sample(self) -> dict[str, Any]:
        """The live page's data now: per-domain rates and percentiles, cache, batches, recent events."""
        with self._lock:
            raw = self._raw()
            base = self._baseline(raw["t"])
            self._history.append(raw)
        seconds = raw["t"] - base["t"] if base else 0.0
        before = {d["domain"]: d for d in base["snap"]["domains"]} if base else {}
        domains = []
        for row in raw["snap"]["domains"]:
            old = before.get(row["domain"], {})
            window = _minus(raw["latency"].get(row["domain"], []), base["latency"].get(row["domain"]) if base else None)
            requests = row["requests"] - old.get("requests", row["requests"])
            domains.append(
                {
                    **row,
                    "rps": requests / seconds if seconds > 0 else 0.0,
                    "window_requests": requests,
                    "window_errors": row["errors"] - old.get("errors", row["errors"]),
                    "p50_ms": _ms(quantile(0.5, window)),
                    "p99_ms": _ms(quantile(0.99, window)),
                }
            )
        batch = [(le, count) for le, count in raw["batch"]]
        histogram, below = [], 0.0
        for le, count in batch:  # cumulative -> per bucket, for the bar chart
            histogram.append({"le": "+Inf" if math.isinf(le) else f"{le:g}", "count": count - below})
            below = count
        recent = []
        for event in reversed(raw["snap"].get("recent", [])[-20:]):
            item = dict(event)
            if "sha256" in item and "version" not in item:
                item["version"] = self._ref_of(item["sha256"])
            recent.append(item)
        return {
            "window_s": round(seconds, 1),
            "base_model": raw["snap"]["base_model"],
            "device": raw["snap"]["device"],
            "queue_depth": raw["snap"]["queue_depth"],
            "domains": domains,
            "cache": raw["snap"]["cache"],
            "batch_sizes": histogram,
            "recent": recent,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
