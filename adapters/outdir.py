"""Output folders that appear whole or not at all."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loradock.adapters.errors import ExportError

log = logging.getLogger(__name__)


# Written into every folder staged_output() makes: the list of files it wrote.
# --overwrite replaces only such a folder, and only while it holds nothing else.
MARKER = ".loradock-output.json"


def check_output(out: Path, overwrite: bool) -> Path:
    """Refuse a non-empty `out` unless `overwrite` and it is a previous output of ours; refuse a file always."""
    out = Path(out).expanduser()
    try:
        str(out).encode("utf-8")
    except UnicodeEncodeError:  # bytes the filesystem took but UTF-8 cannot name: no record could hold it
        raise ExportError(
            f"Output {str(out)!r} is not a valid UTF-8 path; pass an --out whose name is UTF-8 text."
        ) from None
    if out.exists() and not out.is_dir():
        raise ExportError(f"Output {str(out)!r} is a file, not a folder; pass another --out.")
    _check_not_home(out)
    if out.exists() and not overwrite and _has_entries(out):  # an empty folder made for us is fine
        raise ExportError(
            f"Output folder {str(out)!r} already exists and is not empty; pass --overwrite to "
            "replace it, or another --out."
        )
    if out.exists():
        _check_replaceable(out)
    return out


def _has_entries(folder: Path) -> bool:
    return any(True for _ in folder.iterdir())


def _check_not_home(out: Path) -> None:
    from loradock.registry.home import default_home

    home = default_home().expanduser().absolute().resolve()
    target = out.absolute().resolve()
    if target == home or target in home.parents:
        raise ExportError(
            f"Output {str(out)!r} is or holds the registry home {str(home)!r}; writing there could destroy the "
            "registry. Pass another --out."
        )


def _check_replaceable(out: Path) -> None:
    """--overwrite replaces an empty folder, or one we wrote that holds only what we wrote."""
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()} - {MARKER}
    if not present and not _has_entries(out):
        return
    try:
        written = set(json.loads((out / MARKER).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ExportError(
            f"Output folder {str(out)!r} was not written by loradock (no {MARKER}); --overwrite only replaces "
            "a previous output. Remove it yourself, or pass another --out."
        ) from None
    foreign = sorted(present - written)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ExportError(
            f"Output folder {str(out)!r} holds files loradock did not write ({shown}); --overwrite would delete "
            "them. Move them away, or pass another --out."
        )


def _mark(folder: Path) -> None:
    """Record what we wrote, and give the folder the permissions a plain mkdir would (mkdtemp makes 0700)."""
    files = sorted(folder_files(folder))
    (folder / MARKER).write_text(json.dumps({"tool": "loradock", "files": files}, indent=1) + "\n")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def copy_folder(src: Path, dest: Path) -> None:
    """Copy the files of `src` (recursively) into the existing folder `dest`."""
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under `folder` by its relative POSIX name: what an artifact stores (not our marker)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}


@contextmanager
def staged_output(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder beside `out`, renamed to `out` only when the block succeeds.

    On any error the temporary folder (and any parent folders made for it) is
    removed, so a failed merge or export leaves nothing behind.
    """
    out = check_output(out, overwrite).absolute()
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".incomplete"))
    except OSError as exc:  # a parent that is a file, a read-only folder
        _remove_empty(made)
        raise ExportError(
            f"Cannot write output {str(out)!r} ({exc.strerror or exc}: "
            f"{exc.filename or out.parent}); pass another --out."
        ) from None
    try:
        yield tmp
        _mark(tmp)
        _replace(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise


def _remove_empty(made: list[Path]) -> None:
    for folder in made:  # deepest first; only folders we created, and only if still empty
        try:
            folder.rmdir()
        except OSError:
            break


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
