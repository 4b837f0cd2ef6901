"""The serving engine: served domains, routing to versions, the batch runner and hot swap."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loradock.registry import AdapterVersion, Registry, parse_ref

from .backends import Backend, bind_metrics, make_model
from .batcher import Job, MicroBatcher
from .cache import AdapterCache, CacheEntry
from .config import ServeConfig, check_served_tasks
from .errors import AdapterLoadError, UnknownServedDomainError, UnverifiedBaseError
from .metrics import ServerMetrics
from .weights import AdapterWeights, read_adapter

log = logging.getLogger(__name__)

# Inputs up to this many characters in all are tokenized on the event loop; larger ones in a thread.
INLINE_ENCODE_CHARS = 2000


@dataclass
class ServedDomain:
    """One domain the server answers for: the ref it follows and the version serving now."""

    domain: str
    spec: str  # e.g. "medical@production": re-resolved when the registry changes
    current: CacheEntry
    requests: int = 0
    errors: int = 0
    swapped_at: float = field(default_factory=time.time)
    last_error: str | None = None


@dataclass(frozen=True)
class VersionedLogits:
    """The raw logits for one input and the version that produced them (labels and scores come later, in app.py).

    Not `adapters.predict.Prediction`, which is a finished label and score for a text.
    """

    logits: Any  # one row: a torch tensor, a numpy array or a list of floats, by backend
    version: AdapterVersion


class ServingEngine:
    """One base model, many adapters: route, batch, run, swap."""

    def __init__(self, config: ServeConfig, registry: Registry | None = None, model: Backend | None = None) -> None:
        self.config = config
        self.registry = registry or Registry()
        check_served_tasks(self.registry, config.domains)  # before the base loads: a wrong task fails in a second
        self.model: Backend = model or make_model(config, self.registry, config.backend)  # torch or onnx
        self.metrics = ServerMetrics()
        bind_metrics(self.model, self.metrics.registry)
        self.cache = AdapterCache(self._load, self.model.prepare, config.max_loaded, config.max_host)
        self.batcher = MicroBatcher(
            self._run,
            config.max_batch_size,
            config.max_wait_ms,
            config.max_queue,
            fits=self._fits,
            on_batch=self.metrics.observe_batch,
            workers=config.batch_workers(self.model.backend),
        )
        self.metrics.watch(self.cache, lambda: self.batcher.depth)
        self._lock = threading.RLock()
        self.served: dict[str, ServedDomain] = {}
        # Recent swaps and evictions for live pages (snapshot()); bounded, newest last.
        self.recent: deque[dict[str, Any]] = deque(maxlen=100)
        self.cache.add_remove_hook(
            lambda sha, tier: self.recent.append({"event": "evict", "at": time.time(), "sha256": sha, "tier": tier})
        )
        for spec in config.domains:
            self.add_domain(spec)

    # -- loading -------------------------------------------------------------

    def _load(self, version: AdapterVersion) -> AdapterWeights:
        """Registry -> tensors, refusing an adapter trained on another base."""
        if not version.base_fingerprint and not self.config.allow_unverified_base:
            raise UnverifiedBaseError(
                f"{version.ref} records no base fingerprint (unverified base {version.base_model!r}), so nothing "
                f"shows it was trained on {self.model.base_model}; re-register it with its base at hand, or start "
                "the server with --allow-unverified-base to serve it anyway."
            )
        if version.base_fingerprint and version.base_fingerprint != self.model.fingerprint:
            raise AdapterLoadError(
                f"{version.ref} was trained on base {version.base_model} ({version.base_fingerprint[:19]}), "
                f"but this server runs {self.model.base_model} ({self.model.fingerprint[:19]}); "
                "start a server on that base for it."
            )
        weights = read_adapter(version, self.registry.path(version.ref))
        self.model.check_modules(weights)
        return weights

    def _pin_version(self, version: AdapterVersion) -> CacheEntry:
        entry = self.cache.lease(version)
        self.cache.pin(entry.sha256)
        try:
            self.cache.acquire_device([entry])  # warm the device tier now, not mid-request
            self.cache.release_device([entry])
        except BaseException:
            self.cache.unpin(entry.sha256)
            raise
        finally:
            self.cache.release(entry)
        return entry

    def add_domain(self, spec: str) -> ServedDomain:
        """Serve `DOMAIN@REF`, pinned; raises if the version cannot be served here."""
        ref = parse_ref(spec)
        version = self.registry.resolve(ref)
        entry = self._pin_version(version)
        served = ServedDomain(ref.domain, str(ref), entry)
        with self._lock:
            self.served[ref.domain] = served
        log.info("serving %s as %s (%s)", served.spec, version.ref, version.sha256[:12])
        return served

    # -- routing -------------------------------------------------------------

    def served_names(self) -> list[str]:
        return sorted(self.served)

    def route(self, domain: str) -> CacheEntry:
        """The leased entry now serving `domain`; the caller must `cache.release` it."""
        with self._lock:
            served = self.served.get(domain)
            if served is None:
                raise UnknownServedDomainError(domain, self.served_names())
            served.requests += 1
            return self.cache.lease(served.current.version)

    def route_version(self, domain: str, ref: str) -> CacheEntry:
        """A leased entry for an explicit version or alias of a served domain (may load it)."""
        if domain not in self.served:
            raise UnknownServedDomainError(domain, self.served_names())
        with self._lock:
            self.served[domain].requests += 1
        return self.cache.lease(self.registry.resolve(f"{domain}@{ref}"))

    async def predict(self, entry: CacheEntry, texts: Sequence[str]) -> list[VersionedLogits]:
        """Logits for each text through `entry`, batched with whatever else is in flight."""
        if sum(len(t) for t in texts) <= INLINE_ENCODE_CHARS:
            ids = self.model.encode(texts)  # tens of microseconds: cheaper than a hop to a thread and back
        else:
            ids = await asyncio.to_thread(self.model.encode, texts)  # up to 64 x 4000 chars: not on the loop
        jobs = [Job(row, entry) for row in ids]
        self.batcher.submit(jobs)
        logits = await asyncio.gather(*(asyncio.wrap_future(job.future) for job in jobs))
        return [VersionedLogits(lg, entry.version) for lg in logits]

    # -- the batch runner (worker thread) -------------------------------------

    def _fits(self, shas: set[str]) -> bool:
        return len(shas | self.cache.pinned_device_shas()) <= self.config.max_loaded

    def _run(self, jobs: list[Job]) -> list[Any]:
        entries: list[CacheEntry] = [job.adapter for job in jobs]
        unique = list(dict.fromkeys(entries))
        weights = dict(zip((e.sha256 for e in unique), self.cache.acquire_device(unique)))
        try:
            return self.model.run([job.ids for job in jobs], [weights[e.sha256] for e in entries])
        finally:
            self.cache.release_device(unique)

    # -- hot swap ------------------------------------------------------------

    def refresh(self, domains: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Re-resolve served refs; swap any whose version changed. Returns the swaps made."""
        changes = []
        for name in list(domains or self.served):
            served = self.served.get(name)
            if served is None:
                continue
            try:
                version = self.registry.resolve(served.spec)
                if version.sha256 == served.current.sha256:
                    continue
                new = self._pin_version(version)  # loaded beside the old one
            except Exception as exc:  # a bad new version keeps the old one serving
                served.last_error = str(exc)
                log.error("cannot swap %s: %s", served.spec, exc)
                changes.append({"domain": name, "error": str(exc)})
                continue
            with self._lock:
                old, served.current = served.current, new
                served.swapped_at = time.time()
                served.last_error = None
                self.cache.unpin(old.sha256)
                self.cache.retire(old.sha256)  # freed once its in-flight requests finish
            self.metrics.swaps.labels(name).inc()
            self.recent.append(
                {"event": "swap", "at": time.time(), "domain": name, "old": old.version.ref, "new": version.ref}
            )
            log.info(
                "swapped %s: %s -> %s (%s)",
                served.spec,
                old.version.ref,
                version.ref,
                version.sha256[:12],
                extra={"domain": name, "version": version.ref, "sha256": version.sha256, "event": "swap"},
            )
            changes.append({"domain": name, "old": old.version.ref, "new": version.ref, "sha256": version.sha256})
        return changes

    def count_error(self, domain: str) -> None:
        with self._lock:
            if domain in self.served:
                self.served[domain].errors += 1

    # -- views and lifecycle ----------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """What is served: version, alias followed, content hash, where it sits, counts."""
        with self._lock:
            rows = []
            for name in sorted(self.served):
                s = self.served[name]
                v = s.current.version
                rows.append(
                    {
                        "domain": name,
                        "follows": s.spec,
                        "version": v.ref,
                        "number": v.number,
                        "sha256": v.sha256,
                        "labels": list(v.labels),
                        "tier": s.current.tier,
                        "pinned": bool(s.current.pinned),
                        "requests": s.requests,
                        "errors": s.errors,
                        "load_ms": round(s.current.load_ms, 2),
                        "last_error": s.last_error,
                        **self.model.describe(s.current.device),
                    }
                )
            return rows

    def snapshot(self) -> dict[str, Any]:
        """A read-only picture for live pages: what serves each domain, cache residency, recent swaps/evictions."""
        with self._lock:
            swapped = {name: s.swapped_at for name, s in self.served.items()}
        stats = self.cache.stats
        resident = [
            {"version": e.version.ref, "sha256": e.sha256, "tier": e.tier, "pinned": bool(e.pinned), "leases": e.leases}
            for e in self.cache.entries()
        ]
        return {
            "at": time.time(),
            "base_model": self.model.base_model,
            "device": self.model.device,
            "queue_depth": self.batcher.depth,
            "domains": [{**row, "swapped_at": swapped.get(row["domain"])} for row in self.describe()],
            "cache": {
                "max_loaded": self.cache.max_loaded,
                "max_host": self.cache.max_host,
                "resident": resident,
                "hits": stats.hits,
                "misses": stats.misses,
                "loads": stats.loads,
                "evictions": dict(stats.evictions),
            },
            "recent": list(self.recent),
        }

    def start(self) -> None:
        self.batcher.start()

    def close(self) -> None:
        self.batcher.stop()
