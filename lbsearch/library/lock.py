"""The library's writer lock: one process at a time may change a library."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .folder import LOCK_NAME, LibraryLockedError, LibraryReadOnlyError


@dataclass(frozen=True)
class LockHolder:
    pid: int | None
    host: str
    purpose: str
    since: float | None


class WriterLock:
    """An exclusive advisory lock on `<library>/lock` (flock; released by the OS when the
    holder dies, so a crashed indexer never leaves the library locked)."""

    def __init__(self, library: Path) -> None:
        self.library = library
        self.path = library / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, purpose: str = "lbsearch index") -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except PermissionError as err:
            raise LibraryReadOnlyError(
                f"cannot create or open the lock file {self.path}: {err.strerror or err}",
                "the library is read-only for this user: `query`, `status` and `serve` work on "
                "it; to index, use a library you can write (--library DIR)",
            ) from err
        if not _lock_fd(fd):
            os.close(fd)
            return False
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info | {"since": time.time()}).encode())
        self._fd = fd
        return True

    def acquire(self, timeout_s: float = 0.0, purpose: str = "lbsearch index") -> None:
        """Take the lock, waiting up to `timeout_s`; LibraryLockedError names the holder."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not self.try_acquire(purpose):
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._locked_error(timeout_s)
            time.sleep(min(0.1, left))

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            _unlock_fd(self._fd)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """Whether another open of the lock file holds it now (a writer is running). Opens the
        file read-only and never takes the lock, so it works on a read-only library too."""
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False  # no lock file: nobody ever wrote here, or it cannot be read
        try:
            return _is_locked(fd)
        finally:
            os.close(fd)

    def holder(self) -> LockHolder | None:
        """Who wrote the lock file last (it may be stale when nobody holds the lock)."""
        try:
            data = json.loads(self.path.read_bytes() or b"{}")
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not data:
            return None
        pid = data.get("pid")
        return LockHolder(
            pid=pid if isinstance(pid, int) else None,
            host=str(data.get("host", "")),
            purpose=str(data.get("purpose", "")),
            since=data.get("since") if isinstance(data.get("since"), int | float) else None,
        )

    def _locked_error(self, timeout_s: float) -> LibraryLockedError:
        holder = self.holder()
        who = f"pid {holder.pid}" if holder and holder.pid else "pid unknown"
        if holder and holder.host and holder.host != socket.gethostname():
            who += f" on {holder.host}"
        what = holder.purpose if holder and holder.purpose else "lbsearch index"
        waited = f" (waited {timeout_s:g} s)" if timeout_s > 0 else ""
        return LibraryLockedError(
            f"another {what} is running on {self.library} ({who}){waited}",
            "wait for it to finish, stop it, or pass a wait time (lock_timeout_s in [library] "
            "of config.toml); queries keep working meanwhile",
        )

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    _WIN_LOCK_OFFSET = 1 << 30  # lock a byte far past the holder info, which stays readable

    def _lock_fd(fd: int) -> bool:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

    def _is_locked(fd: int) -> bool:
        return False  # a read-only handle cannot probe a Windows byte lock: assume not held

else:
    import fcntl

    def _lock_fd(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock_fd(fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _is_locked(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
