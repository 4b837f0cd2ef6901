"""Watching the registry: poll its event log and hot-swap served domains whose alias moved."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import ServingEngine

log = logging.getLogger(__name__)

# Events that can change what `DOMAIN@REF` resolves to.
_RELEVANT = {"alias.set", "alias.rm", "version.add", "version.rm"}


class RegistryWatcher:
    """A daemon thread that polls `registry.events(since_id)` every `interval` seconds."""

    def __init__(self, engine: ServingEngine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self.since_id = engine.registry.last_event_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # a poll and a manual reload never swap at once

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="loradock-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def poll(self) -> list[dict]:
        """Apply what happened since the last poll; returns the swaps made."""
        with self._lock:
            events = self.engine.registry.events(self.since_id)
            if not events:
                return []
            self.since_id = events[-1].id
            touched = sorted({e.domain for e in events if e.action in _RELEVANT and e.domain in self.engine.served})
            for event in events:
                if event.action == "version.add" and event.domain in self.engine.served:
                    self._log_gate_refusal(event.domain, event.name)
            return self.engine.refresh(touched) if touched else []

    def _log_gate_refusal(self, domain: str, number: str | None) -> None:
        """A new version that failed its quality gate is never moved to; say so, with its hash."""
        try:
            version = self.engine.registry.resolve(f"{domain}@{number}")
        except Exception:  # removed again since: nothing to report
            return
        if version.failed:
            log.warning(
                "not serving %s (%s): it failed its quality gate; %s stays on what it serves",
                version.ref,
                version.sha256[:12],
                self.engine.served[domain].spec,
                extra={"domain": domain, "version": version.ref, "sha256": version.sha256, "event": "gate_refused"},
            )

    def reload(self) -> list[dict]:
        """`POST /v1/admin/reload`: catch up on events, then re-resolve every served domain."""
        with self._lock:
            self.since_id = self.engine.registry.last_event_id()
            return self.engine.refresh()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a registry hiccup must not stop watching
                log.exception("registry poll failed")
