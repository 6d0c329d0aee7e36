"""Opening media files safely: never block on a FIFO, never touch a device, notice vanishing files.

Every decoder reads through `open_media`, which checks the file with `os.stat` before any open and
opens it non-blocking (so a FIFO swapped in between the two calls cannot hang us), then checks the
opened descriptor again. Decoders read from the returned file object, never by path, so names with
any characters (newlines, invalid UTF-8 surrogates) work and a file deleted mid-read stays readable.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import MediaError
from .reasons import media_error

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_IO_ERRNOS = {errno.EIO, errno.ESTALE} if hasattr(errno, "ESTALE") else {errno.EIO}


def stat_regular(path: Path, max_bytes: int = 0) -> os.stat_result:
    """os.stat plus the checks every decode starts with; nothing is opened."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        raise media_error(path, "not_found", "no such file") from None
    except PermissionError as exc:
        raise media_error(path, "unreadable", f"cannot stat: {exc.strerror}") from None
    except OSError as exc:  # ENOTDIR, ENAMETOOLONG, ELOOP: the path cannot name a file
        raise media_error(path, "not_found", f"cannot stat: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise media_error(path, "not_regular_file", f"not a regular file ({_kind(st.st_mode)})")
    if st.st_size == 0:
        raise media_error(path, "empty_file", "the file is empty (0 bytes)")
    if max_bytes and st.st_size > max_bytes:
        raise media_error(path, "too_large", f"{st.st_size} bytes > limit {max_bytes}")
    return st


@contextmanager
def open_media(path: Path, max_bytes: int = 0) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """Open `path` for reading after the stat checks; on exit check it was not replaced.

    Yields the file object and the stat of the opened descriptor. OSErrors raised by the reader
    inside the block become `unreadable`; a file that disappears or changes meanwhile `vanished`.
    """
    stat_regular(path, max_bytes)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise media_error(path, "vanished", "removed before it could be opened") from None
    except OSError as exc:
        raise media_error(path, "unreadable", f"cannot open: {exc.strerror}") from None
    handle = os.fdopen(fd, "rb")
    with handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO/device between stat and open
            raise media_error(path, "not_regular_file", f"not a regular file ({_kind(st.st_mode)})")
        try:
            yield handle, st
        except MediaError:
            raise
        except OSError as exc:
            if exc.errno in _IO_ERRNOS or isinstance(exc, PermissionError):
                raise media_error(path, "unreadable", f"read error: {exc}") from None
            raise
    check_unchanged(path, st)


def check_unchanged(path: Path, before: os.stat_result) -> None:
    """Raise `vanished` if `path` no longer names the file that was read, as it was."""
    try:
        now = Path(path).stat()
    except OSError:
        raise media_error(path, "vanished", "removed while it was being decoded") from None
    same_file = (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)
    same_content = (now.st_size, now.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    if not (same_file and same_content):
        raise media_error(path, "vanished", "replaced or modified while it was being decoded")


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "special file")
