"""Output folders that appear whole or not at all."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loradock.adapters.errors import ExportError

log = logging.getLogger(__name__)


def check_output(out: Path, overwrite: bool) -> Path:
    """Refuse an existing `out` unless `overwrite`; refuse a file in its place always."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ExportError(f"Output {str(out)!r} is a file, not a folder; pass another --out.")
    if out.exists() and not overwrite:
        raise ExportError(f"Output folder {str(out)!r} already exists; pass --overwrite to replace it, or another --out.")
    return out


def copy_folder(src: Path, dest: Path) -> None:
    """Copy the files of `src` (recursively) into the existing folder `dest`."""
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under `folder` by its relative POSIX name: what an artifact stores."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def staged_output(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside `out`, renamed to `out` only when the block succeeds.

    On any error the temporary folder (and any parent folders made for it) is
    removed, so a failed merge or export leaves nothing behind.
    """
    out = check_output(out, overwrite).absolute()
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".incomplete"))
    try:
        yield tmp
        _replace(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:  # deepest first; only folders we created, and only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _replace(tmp: Path, out: Path, overwrite: bool) -> None:
    check_output(out, overwrite)  # someone may have created it while we worked
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.info("wrote %s", out)
