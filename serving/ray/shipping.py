"""Adapter bytes by content hash, through Ray's object store: no shared filesystem between ingress and replicas.

The ingress reads a version's files from the registry (hash-checked on the way out) and
`ray.put`s them once; the object ref travels with every request, and a replica only fetches
it when it does not hold that content hash yet. The replica checks every file's sha256 and
the version's content hash before writing the files to its own scratch folder, which its
engine then reads like a registry folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loradock.registry import AdapterVersion, Registry
from loradock.registry.store import check_relpath, content_hash

from .errors import ShipmentError

log = logging.getLogger(__name__)


# A replica's scratch folder in the system temp dir is named after its process:
# loradock-replica-<pid>-<random>. A replica that was killed (no __del__) leaves its
# folder behind, so each new one removes those whose process is gone.
SCRATCH_PREFIX = "loradock-replica-"
_SCRATCH = re.compile(re.escape(SCRATCH_PREFIX) + r"(\d+)-")
_LEGACY_STALE_S = 3600.0  # folders from before the pid was in the name: left alone while recently used


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_scratch(tmp: Path | None = None) -> list[Path]:
    """Remove replica scratch folders in `tmp` (default: the system temp dir) whose process has exited."""
    tmp = Path(tmp or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = [
            p for p in tmp.iterdir() if p.name.startswith(SCRATCH_PREFIX) and p.is_dir() and not p.is_symlink()
        ]
    except OSError:
        return removed
    for folder in candidates:
        match = _SCRATCH.match(folder.name)
        try:
            stale = not _alive(int(match.group(1))) if match else time.time() - folder.stat().st_mtime > _LEGACY_STALE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        log.info("removed %d stale replica scratch folder(s) from %s", len(removed), tmp)
    return removed


@dataclass(frozen=True)
class Shipment:
    """What the ingress cache holds per version: an object ref to its files ({name: bytes})."""

    sha256: str
    ref: Any  # ray.ObjectRef; kept alive by this object, freed when the ingress cache evicts it
    size_bytes: int


def ship(registry: Registry, version: AdapterVersion) -> Shipment:
    """Put `version`'s files in the object store (read once from the registry, hash-checked)."""
    import ray

    folder = registry.path(version.ref)
    files = {name: (folder / name).read_bytes() for name in version.files}
    return Shipment(version.sha256, ray.put(files), sum(len(b) for b in files.values()))


def verify(version: AdapterVersion, files: dict[str, bytes]) -> None:
    """Refuse bytes that are not exactly `version`'s files."""
    if set(files) != set(version.files):
        raise ShipmentError(
            f"{version.ref}: shipped files {sorted(files)} differ from the version's "
            f"{sorted(version.files)}; re-send from the registry."
        )
    for name, meta in version.files.items():
        check_relpath(name)
        actual = hashlib.sha256(files[name]).hexdigest()
        if actual != meta["sha256"]:
            raise ShipmentError(
                f"{version.ref}/{name}: shipped bytes hash to {actual[:12]}, the registry "
                f"records {str(meta['sha256'])[:12]}; refusing them."
            )
    if content_hash(version.files) != version.sha256:
        raise ShipmentError(
            f"{version.ref}: its file list does not hash to its content hash "
            f"{version.sha256[:12]}; run 'adapters verify' on the registry."
        )


class ShippedAdapters:
    """A replica's stand-in for the registry: folders of verified shipped bytes, by version.

    The engine only calls `path(ref)` (to read a version it was handed) and `home`;
    nothing here opens a database, so ADAPTERS_HOME may be empty or absent on the replica.
    """

    def __init__(self, root: Path | None = None) -> None:
        self._owned = root is None  # a scratch folder we made is ours to remove; a given root is not
        if root is None:
            remove_stale_scratch()
            root = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
        self.home = Path(root)
        self.home.mkdir(parents=True, exist_ok=True)
        self._folders: dict[str, Path] = {}  # version ref -> folder named by content hash
        self.received = 0  # shipments fetched from the object store (not counting local hits)

    def has(self, version: AdapterVersion) -> bool:
        return version.ref in self._folders and self._folders[version.ref].name == version.sha256

    def path(self, ref: str) -> Path:
        try:
            return self._folders[ref]
        except KeyError:
            raise ShipmentError(f"{ref} has not been shipped to this replica; send its object ref.") from None

    def accept(self, version: AdapterVersion, files: dict[str, bytes]) -> Path:
        """Verify and write `files`; the folder is renamed into place in one step."""
        verify(version, files)
        final = self.home / version.sha256
        if not final.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=self.home, prefix=f".{version.sha256}.", suffix=".incomplete"))
            try:
                for name, data in files.items():
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / name).write_bytes(data)
                os.replace(tmp, final)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not final.is_dir():
                    raise
        self._folders[version.ref] = final
        self.received += 1
        log.info("received %s (%s) through the object store", version.ref, version.sha256[:12])
        return final

    def close(self) -> None:
        """Remove the scratch folder this store made (the replica is stopping); a given root is left alone."""
        if self._owned:
            shutil.rmtree(self.home, ignore_errors=True)
        self._folders.clear()

    async def receive(self, version: AdapterVersion, object_ref: Any) -> Path:
        """Fetch `object_ref` (a {name: bytes} dict) unless this replica already holds the version."""
        if self.has(version):
            return self._folders[version.ref]
        files = await object_ref
        return self.accept(version, files)
