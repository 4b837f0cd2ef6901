"""Opening files handed to the registry: regular files only, never through a link.

A registered folder (or a pulled one) is input. A `config.json` that is a symbolic
link to `~/.ssh/id_rsa` would otherwise be read, stored, shown by the console and
uploaded by `push`; a FIFO would hang the reader. So the last path component is
checked with `lstat` before anything is read, and opened with `O_NOFOLLOW` so a link
swapped in after the check is refused too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import UnsafeFileError

# O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def _refuse(path: Path, mode: int) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path} is a {_kind(mode)}, not a regular file; loradock reads and stores only regular files "
        "(a link could point at any file on this machine). Replace it with a copy of the real file "
        "(cp -L, or pull it with 'adapters pull') and try again."
    )


def is_regular(path: Path) -> bool:
    """True for a regular file, False when nothing is there; a link or special file is refused."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode)
    return True


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading without following a link; refused unless it is a regular file."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise exc from None
        if not stat.S_ISREG(mode):  # ELOOP from O_NOFOLLOW, ENXIO from a socket, ...
            raise _refuse(path, mode) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refuse(path, mode)
    return os.fdopen(fd, "rb")
