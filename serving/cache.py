"""Adapter cache keyed by content hash: a device tier of at most `max_loaded`, a host tier, then the registry.

Like vLLM's LoRA manager: LRU in each tier, pinned entries never evicted,
one `_on_remove` hook for every eviction side effect, and "all pinned" is an
explicit error. Two counts guard against evicting what is still needed:
`leases` (requests in flight that were routed to this version) keep it in
host memory, `batch_refs` (a batch running on it) keep it on the device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from loradock.registry import AdapterVersion

from .errors import AllPinnedError
from .weights import AdapterWeights

log = logging.getLogger(__name__)

Loader = Callable[[AdapterVersion], AdapterWeights]
Preparer = Callable[[AdapterWeights], AdapterWeights]
RemoveHook = Callable[[str, str], None]  # (sha256, tier)


def _log_fields(version: AdapterVersion, event: str) -> dict[str, str]:
    """Structured fields for `--log-format json`: what happened, to which domain, version and content hash."""
    return {"event": event, "domain": version.ref.partition("@")[0], "version": version.ref, "sha256": version.sha256}


@dataclass(eq=False)  # identity: entries go in sets and dicts
class CacheEntry:
    version: AdapterVersion
    host: AdapterWeights
    device: AdapterWeights | None = None
    pinned: int = 0
    leases: int = 0
    batch_refs: int = 0
    retired: bool = False
    load_ms: float = 0.0
    hits: int = 0

    @property
    def sha256(self) -> str:
        return self.version.sha256

    @property
    def tier(self) -> str:
        return "device" if self.device is not None else "host"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    loads: int = 0
    device_loads: int = 0
    evictions: dict[str, int] = field(default_factory=lambda: {"device": 0, "host": 0})


class AdapterCache:
    """Resident adapters by sha256, in two LRU tiers, safe to use from several threads."""

    def __init__(self, loader: Loader, preparer: Preparer, max_loaded: int, max_host: int) -> None:
        self._loader = loader
        self._prepare = preparer
        self.max_loaded = max_loaded
        self.max_host = max(max_host, max_loaded)
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()  # host tier, LRU order
        self._device: OrderedDict[str, None] = OrderedDict()  # device tier, LRU order
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}
        self.stats = CacheStats()
        self._hooks: list[RemoveHook] = []

    # -- hooks and views -----------------------------------------------------

    def add_remove_hook(self, hook: RemoveHook) -> None:
        self._hooks.append(hook)

    def _on_remove(self, entry: CacheEntry, tier: str) -> None:
        """Every eviction side effect lives here."""
        self.stats.evictions[tier] += 1
        if tier == "device":
            entry.device = None
            self._device.pop(entry.sha256, None)
        else:
            self._entries.pop(entry.sha256, None)
        log.info(
            "evicted %s (%s) from %s",
            entry.version.ref,
            entry.sha256[:12],
            tier,
            extra={**_log_fields(entry.version, "evict"), "tier": tier},
        )
        for hook in self._hooks:
            hook(entry.sha256, tier)

    def entry(self, sha256: str) -> CacheEntry | None:
        with self._lock:
            return self._entries.get(sha256)

    def entries(self) -> list[CacheEntry]:
        with self._lock:
            return list(self._entries.values())

    def device_count(self) -> int:
        with self._lock:
            return len(self._device)

    # -- host tier -----------------------------------------------------------

    def lease(self, version: AdapterVersion) -> CacheEntry:
        """The entry for `version`, loaded into host memory if needed, with one lease taken."""
        entry = self._get_or_load(version)
        with self._lock:
            entry.leases += 1
        return entry

    def release(self, entry: CacheEntry) -> None:
        """Give back a lease; a retired entry nobody uses any more is freed."""
        with self._lock:
            entry.leases -= 1
            if entry.retired and entry.leases <= 0 and entry.batch_refs <= 0 and not entry.pinned:
                self._drop(entry)

    def _get_or_load(self, version: AdapterVersion) -> CacheEntry:
        sha = version.sha256
        with self._lock:
            entry = self._entries.get(sha)
            if entry is not None:
                self._entries.move_to_end(sha)
                entry.hits += 1
                entry.retired = False
                self.stats.hits += 1
                return entry
            self.stats.misses += 1
            load_lock = self._load_locks.setdefault(sha, threading.Lock())
        with load_lock:  # one load per hash, even when many requests miss at once
            with self._lock:
                entry = self._entries.get(sha)
                if entry is not None:
                    return entry
            started = time.perf_counter()
            try:
                weights = self._loader(version)
            except BaseException as exc:
                with self._lock:  # a failed load leaves no lock behind for this hash
                    self._load_locks.pop(sha, None)
                log.warning(
                    "refused to load %s (%s): %s", version.ref, sha[:12], exc, extra=_log_fields(version, "refused")
                )
                raise
            entry = CacheEntry(version, weights, load_ms=(time.perf_counter() - started) * 1000)
            with self._lock:
                self._entries[sha] = entry
                self.stats.loads += 1
                self._load_locks.pop(sha, None)
                self._shrink_host()
            log.info(
                "loaded %s (%s) in %.1f ms", version.ref, sha[:12], entry.load_ms, extra=_log_fields(version, "load")
            )
            return entry

    def _shrink_host(self) -> None:
        excess = len(self._entries) - self.max_host
        for entry in list(self._entries.values()):
            if excess <= 0:
                break
            if self._idle(entry):
                self._drop(entry)
                excess -= 1
        if excess > 0:
            log.warning(
                "host tier holds %d adapters over max_host=%d: all others are pinned or in use", excess, self.max_host
            )

    @staticmethod
    def _idle(entry: CacheEntry) -> bool:
        return not entry.pinned and entry.leases <= 0 and entry.batch_refs <= 0

    def _drop(self, entry: CacheEntry) -> None:
        if entry.device is not None:
            self._on_remove(entry, "device")
        if entry.sha256 in self._entries:
            self._on_remove(entry, "host")

    # -- pinning and retiring ------------------------------------------------

    def pin(self, sha256: str) -> None:
        with self._lock:
            self._entries[sha256].pinned += 1

    def unpin(self, sha256: str) -> None:
        with self._lock:
            entry = self._entries.get(sha256)
            if entry is not None and entry.pinned > 0:
                entry.pinned -= 1

    def retire(self, sha256: str) -> None:
        """No new request will use this version: free it once its in-flight work is done."""
        with self._lock:
            entry = self._entries.get(sha256)
            if entry is None:
                return
            entry.retired = True
            if self._idle(entry):
                self._drop(entry)

    def pinned_device_shas(self) -> set[str]:
        with self._lock:
            return {sha for sha, e in self._entries.items() if e.pinned}

    # -- device tier ---------------------------------------------------------

    def acquire_device(self, entries: Iterable[CacheEntry]) -> list[AdapterWeights]:
        """Device weights for a batch's adapters, holding each until `release_device`."""
        wanted = list(dict.fromkeys(entries))
        with self._lock:
            for entry in wanted:
                entry.batch_refs += 1
            try:
                for entry in wanted:
                    self._entries.setdefault(entry.sha256, entry)  # dropped while queued: admit it again
                    if entry.device is None:
                        self._make_room()
                        entry.device = self._prepare(entry.host)
                        self.stats.device_loads += 1
                    self._device[entry.sha256] = None
                    self._device.move_to_end(entry.sha256)
            except BaseException:
                self.release_device(wanted)
                raise
            return [e.device for e in wanted]  # type: ignore[misc]

    def release_device(self, entries: Iterable[CacheEntry]) -> None:
        with self._lock:
            for entry in dict.fromkeys(entries):
                entry.batch_refs -= 1
                if entry.retired and self._idle(entry):
                    self._drop(entry)

    def _make_room(self) -> None:
        if len(self._device) < self.max_loaded:
            return
        for sha in list(self._device):
            entry = self._entries[sha]
            if not entry.pinned and entry.batch_refs <= 0:
                self._on_remove(entry, "device")
                return
        pinned = sum(1 for sha in self._device if self._entries[sha].pinned)
        raise AllPinnedError(
            f"All {self.max_loaded} device slots hold pinned or in-use adapters ({pinned} pinned); "
            "raise --max-loaded or serve fewer domains.",
            retry_after=1,
        )
