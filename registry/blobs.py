"""Content-addressed bytes: `blobs/ab/<sha256>`, written once, never edited."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import CorruptBlobError, UnsafeFileError
from .regular_files import open_regular

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of a regular file, read in chunks; a link or special file is refused."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Bytes keyed by their sha256, the way huggingface_hub's cache keeps `blobs/`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_file(self, src: Path) -> tuple[str, int]:
        """Copy `src` in (hashing on the way) and return (sha256, size); stored once."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, suffix=".incomplete")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            size = 0
            with open_regular(src) as fin, os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    digest.update(chunk)
                    fout.write(chunk)
                    size += len(chunk)
                fout.flush()
                os.fsync(fout.fileno())
            sha = digest.hexdigest()
            dest = self.path(sha)
            if dest.is_file() and self.check(sha) is None:
                tmp.unlink()
                return sha, size
            # Missing, or rotted in place: the fresh copy replaces it.
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
            return sha, size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def check(self, sha256: str) -> str | None:
        """None if the blob is intact, else what is wrong with it."""
        path = self.path(sha256)
        if not path.is_file():
            return "missing"
        try:
            actual = sha256_file(path)
        except UnsafeFileError:  # a link planted in the store is damage, not a blob
            return "not a regular file"
        return None if actual == sha256 else f"corrupt (hashes to {actual[:12]})"

    def copy_verified(self, sha256: str, dest: Path, where: str = "") -> None:
        """Copy a blob to `dest`, refusing it if its bytes no longer hash to `sha256` (`where` names its owner)."""
        src = self.path(sha256)
        if not src.is_file():
            raise CorruptBlobError(sha256, str(src), "missing", where)
        digest = hashlib.sha256()
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
        if digest.hexdigest() != sha256:
            dest.unlink(missing_ok=True)
            raise CorruptBlobError(sha256, str(src), f"corrupt (hashes to {digest.hexdigest()[:12]})", where)

    def all(self) -> Iterator[str]:
        for sub in sorted(self.root.glob("??")):
            for blob in sorted(sub.iterdir()):
                if len(blob.name) == 64:
                    yield blob.name

    def remove(self, sha256: str) -> int:
        path = self.path(sha256)
        size = path.stat().st_size
        path.unlink()
        return size

    def stale_tmp(self, older_than_s: float = 3600.0) -> list[Path]:
        """Partial writes left by killed processes (young ones may still be in flight)."""
        if not self.tmp.is_dir():
            return []
        cutoff = time.time() - older_than_s
        return [p for p in self.tmp.iterdir() if p.stat().st_mtime < cutoff]
