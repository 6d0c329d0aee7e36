"""The one way to open an indexed file for someone else (the web service's content, thumbnails).

`open_indexed(record, roots)` opens the file a catalog row names only if all of these hold, and
otherwise raises `NotServable` before a byte is read:

- the row's status is `indexed` (failed and stale rows name files that never passed a decoder);
- the row carries the device and inode recorded at indexing (rows written before those columns
  existed cannot be verified and are refused: the stricter choice; `lbsearch index` again
  records them);
- the last component is not a symbolic link (`O_NOFOLLOW`): a link planted in an indexed folder
  (`passwd.jpg -> /etc/passwd`) is never followed, even to a file that indexed well;
- it is opened non-blocking (a FIFO cannot hang the caller) and is a regular file;
- the opened file's real path (read back from the descriptor, so no path can be swapped between
  the check and the open) lies inside one of the library's roots (their real paths);
- `fstat` of the descriptor gives the device, inode, size and mtime recorded at indexing: a file
  replaced by another of the same size and mtime has another inode.

Callers read from the returned handle only, never by path again.

"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..catalog.records import FileStatus
from ..errors import LbsearchError
from .reasons import media_error

if TYPE_CHECKING:
    from ..catalog.records import FileRecord

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NOCTTY", 0)
)
_HINT = "run `lbsearch index` on its folder again"


class NotServable(LbsearchError):
    """A catalog row whose file may not be handed out: not indexed, moved, swapped or changed."""


@dataclass(frozen=True)
class Roots:
    """The library's roots as real paths (links resolved once, when the set is built)."""

    real: tuple[str, ...]

    @classmethod
    def of(cls, roots: Iterable[str]) -> Roots:
        return cls(tuple(sorted({os.path.realpath(r) for r in roots})))

    def contain(self, real_path: str) -> bool:
        return any(_inside(real_path, root) for root in self.real)


def check_row(record: FileRecord) -> None:
    """NotServable unless the row describes a file that indexed and can be verified."""
    if record.status is not FileStatus.INDEXED:
        raise NotServable(f"file {record.id} was not indexed ({record.status.value})", _HINT)
    if record.dev is None or record.ino is None:
        raise NotServable(
            f"file {record.id} was indexed before lbsearch recorded inodes; it cannot be verified",
            _HINT,
        )


def open_indexed(record: FileRecord, roots: Roots) -> tuple[BinaryIO, os.stat_result]:
    """The file of `record`, opened and verified (see the module's doc), and its fstat. The
    caller owns the handle (`with handle:`)."""
    check_row(record)
    try:
        fd = os.open(record.path, _FLAGS)
    except OSError as error:  # ELOOP: a link; ENOENT: gone; EACCES: unreadable
        raise NotServable(f"file {record.id} cannot be opened: {error.strerror}", _HINT) from None
    handle = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        _verify(record, roots, fd, st)
    except BaseException:
        handle.close()
        raise
    return handle, st


def _verify(record: FileRecord, roots: Roots, fd: int, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise NotServable(f"file {record.id} is not a regular file", _HINT)
    if not roots.contain(_real_path(fd, record.path)):
        raise NotServable(f"file {record.id} lies outside the library's folders", _HINT)
    recorded = (record.dev, record.ino, record.size, record.mtime_ns)
    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != recorded:
        raise NotServable(f"file {record.id} changed since it was indexed", _HINT)


def _real_path(fd: int, path: str) -> str:
    """Where the open descriptor really is (Linux: /proc/self/fd); elsewhere the path's real
    path, which the device and inode check then ties to the opened file."""
    try:
        return str(Path(f"/proc/self/fd/{fd}").readlink())
    except OSError:
        return os.path.realpath(path)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def reopen_in_worker(record: FileRecord, roots: Roots) -> BinaryIO:
    """`open_indexed` in a decode worker, which opens the file again itself: a path swapped
    since the server's check is a MediaError "vanished" (the pool's error for a file gone)."""
    try:
        handle, _ = open_indexed(record, roots)
    except NotServable as error:
        raise media_error(record.path, "vanished", error.message) from None
    return handle
