"""Prometheus metrics, one CollectorRegistry per app so several servers can live in one process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from .cache import AdapterCache

# `*_created` series double the scrape for timestamps nobody graphs (process-wide switch;
# needs prometheus-client >= 0.17).
disable_created_metrics()

ServedRows = Callable[[], "list[tuple[str, str, str]]"]  # (domain, version ref, sha256)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _CacheCollector:
    """Reads the cache's own counters at scrape time, so the cache needs no prometheus import."""

    def __init__(self, cache: AdapterCache) -> None:
        self.cache = cache

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.cache.stats
        for name, value, doc in (
            ("loradock_adapter_cache_hits", stats.hits, "Requests whose adapter was resident."),
            ("loradock_adapter_cache_misses", stats.misses, "Requests whose adapter had to be loaded."),
            ("loradock_adapter_cache_loads", stats.loads, "Adapters loaded from the registry."),
            ("loradock_adapter_device_loads", stats.device_loads, "Adapters moved onto the device."),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        evictions = CounterMetricFamily(
            "loradock_adapter_cache_evictions", "Adapters evicted, by tier.", labels=["tier"]
        )
        for tier, count in stats.evictions.items():
            evictions.add_metric([tier], count)
        yield evictions
        resident = GaugeMetricFamily("loradock_adapters_resident", "Adapters resident, by tier.", labels=["tier"])
        resident.add_metric(["device"], self.cache.device_count())
        resident.add_metric(["host"], len(self.cache.entries()))
        yield resident


class _ServedCollector:
    """`loradock_served_version_info{domain,version,sha256} 1` for what serves each domain right now."""

    def __init__(self, rows: ServedRows) -> None:
        self.rows = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "loradock_served_version_info",
            "The version serving each domain (value 1).",
            labels=["domain", "version", "sha256"],
        )
        for domain, version, sha256 in self.rows():
            info.add_metric([domain, version, sha256], 1)
        yield info


class ServerMetrics:
    """Requests, errors and latency per domain; batch sizes; queue depth; adapter cache counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "loradock_requests", "HTTP requests by domain and status.", ["domain", "status"], registry=r
        )
        self.errors = Counter(
            "loradock_errors", "Failed requests by domain and status.", ["domain", "status"], registry=r
        )
        self.latency = Histogram(
            "loradock_request_seconds", "Request latency by domain.", ["domain"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram("loradock_batch_size", "Rows per model batch.", buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram(
            "loradock_batch_seconds", "Model time per batch.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("loradock_queue_depth", "Rows waiting for a batch.", registry=r)
        self.swaps = Counter("loradock_version_swaps", "Served version changes by domain.", ["domain"], registry=r)

    def watch(self, cache: AdapterCache, depth: Callable[[], float]) -> None:
        self.registry.register(_CacheCollector(cache))
        self.queue_depth.set_function(depth)

    def watch_served(self, rows: ServedRows) -> None:
        self.registry.register(_ServedCollector(rows))

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def observe_request(self, domain: str, status: int, seconds: float) -> None:
        self.requests.labels(domain, str(status)).inc()
        if status >= 400:
            self.errors.labels(domain, str(status)).inc()
        self.latency.labels(domain).observe(seconds)
