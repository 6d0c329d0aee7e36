"""The library folder: where it is, the writer lock, and its catalog and vectors opened together.

A library is one folder:

    catalog.sqlite     the source of truth (files, segments with their vectors, models)
    vectors/*.faiss    one search index per modality, derived from the catalog
    lock               held (flock) by the one process allowed to write

Location, first match wins: the caller's `--library DIR`, $LBSEARCH_HOME, config
`[library] path`, the platform's user data folder. Writers (`lbsearch index`) take the lock;
readers (`query`, `status`) never take it: the catalog is in WAL mode, so a reader's
transaction sees a consistent snapshot while a writer commits, and a reader that finds an index
behind the catalog (a crash, or an indexer still running) repairs it in memory only; the next
writer to open the library saves the repair. The one exception: a catalog from an older
lbsearch is migrated by the first process that opens it, under the lock if it is free.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config, LibraryConfig
from .errors import LbsearchError
from .types import Modality

if TYPE_CHECKING:
    import numpy as np

    from .catalog import (
        BatchResult,
        CatalogStats,
        FailedFile,
        IndexedFile,
        ModalityChange,
        SegmentFilter,
    )
    from .catalog.store import Catalog
    from .vectors import IndexCheck, IndexInfo, SearchResult, VectorStore

LIBRARY_ENV = "LBSEARCH_HOME"
CATALOG_NAME = "catalog.sqlite"
VECTORS_DIR = "vectors"
LOCK_NAME = "lock"
_KNOWN_ENTRIES = {
    CATALOG_NAME,
    f"{CATALOG_NAME}-wal",
    f"{CATALOG_NAME}-shm",
    VECTORS_DIR,
    LOCK_NAME,
    "cache",
    "config.toml",
}


class LibraryError(LbsearchError):
    """The library folder cannot be found, created or used."""


class LibraryLockedError(LibraryError):
    """Another process holds the library's writer lock."""


@dataclass(frozen=True)
class LibraryLocation:
    """Where the library is and which setting chose it (for messages and `lbsearch status`)."""

    path: Path
    source: str  # "--library", "$LBSEARCH_HOME", "config [library] path", "default"


def locate_library(
    explicit: str | os.PathLike[str] | None = None, config: LibraryConfig | None = None
) -> LibraryLocation:
    """--library DIR > $LBSEARCH_HOME > config [library] path > the user data folder."""
    if explicit is not None and str(explicit):
        chosen, source = str(explicit), "--library"
    elif os.environ.get(LIBRARY_ENV):
        chosen, source = os.environ[LIBRARY_ENV], f"${LIBRARY_ENV}"
    elif config is not None and config.path:
        chosen, source = config.path, "config [library] path"
    else:
        from platformdirs import user_data_dir

        chosen, source = user_data_dir("lbsearch"), "default"
    return LibraryLocation(Path(chosen).expanduser().absolute(), source)


# ------------------------------------------------------------------------------ writer lock


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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
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


# ---------------------------------------------------------------------------------- library


@dataclass(frozen=True)
class LibraryStats:
    """`lbsearch status`: the catalog's counts, the indices and the bytes on disk."""

    root: Path
    catalog: CatalogStats
    indices: tuple[IndexInfo, ...]
    catalog_bytes: int
    vectors_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.catalog_bytes + self.vectors_bytes


class Library:
    """A library folder opened for reading (any number at once) or writing (one at a time).

    Use `Library.open`, as a context manager. Writers change the catalog through this class so
    the vector indices follow each committed batch; `save()` writes the indices (call it now and
    then during a long run and at the end; a crash in between is repaired at the next open).
    """

    def __init__(
        self, root: Path, catalog: Catalog, vectors: VectorStore, lock: WriterLock, writable: bool
    ) -> None:
        self.root = root
        self.catalog = catalog
        self.vectors = vectors
        self.writable = writable
        self._lock = lock

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | LibraryLocation | None = None,
        *,
        config: Config | None = None,
        write: bool = False,
        lock_timeout_s: float | None = None,
        purpose: str = "lbsearch index",
    ) -> Library:
        """Open the library at `location` (resolved with locate_library when not a Location).

        write=True creates the folder if needed, takes the writer lock (waiting up to
        lock_timeout_s, default from config) and repairs any index a crash left behind.
        write=False needs an existing library and never waits for an indexer (it only tries the
        lock, without waiting, if the catalog's schema must be upgraded first).
        """
        config = config or Config()
        if isinstance(location, LibraryLocation):
            where = location
        else:
            where = locate_library(location, config.library)
        timeout = config.library.lock_timeout_s if lock_timeout_s is None else lock_timeout_s
        if write:
            return cls._open_writer(where, config, timeout, purpose)
        return cls._open_reader(where, config, timeout)

    @classmethod
    def _open_writer(
        cls, where: LibraryLocation, config: Config, timeout: float, purpose: str
    ) -> Library:
        from .catalog.store import Catalog
        from .vectors.store import VectorStore, clean_temporary_files

        root = _prepare_folder(where)
        lock = WriterLock(root)
        lock.acquire(timeout, purpose)
        try:
            catalog = Catalog(
                root / CATALOG_NAME, create=True, busy_timeout_s=config.library.busy_timeout_s
            )
            vectors = VectorStore(root / VECTORS_DIR, catalog, config.index)
            clean_temporary_files(vectors.directory)
            library = cls(root, catalog, vectors, lock, writable=True)
            vectors.recover()
        except BaseException:
            lock.release()
            raise
        return library

    @classmethod
    def _open_reader(cls, where: LibraryLocation, config: Config, timeout: float) -> Library:
        from .catalog.store import Catalog, CatalogMigrationNeeded
        from .vectors.store import VectorStore

        root = where.path
        if not (root / CATALOG_NAME).is_file():
            raise LibraryError(
                f"no lbsearch library at {root} (chosen by {where.source})",
                "run `lbsearch index FOLDER` first, or point --library / $LBSEARCH_HOME at it",
            )
        lock = WriterLock(root)
        busy = config.library.busy_timeout_s
        try:
            catalog = Catalog(root / CATALOG_NAME, migrate=False, busy_timeout_s=busy)
        except CatalogMigrationNeeded:
            with contextlib.ExitStack() as stack:
                lock.acquire(timeout, "lbsearch (upgrading the catalog)")
                stack.callback(lock.release)
                catalog = Catalog(root / CATALOG_NAME, busy_timeout_s=busy)
        return cls(
            root, catalog, VectorStore(root / VECTORS_DIR, catalog, config.index), lock, False
        )

    # ------------------------------------------------------------------------ writing

    def _require_writer(self) -> None:
        if not self.writable:
            raise LibraryError(
                f"{self.root} was opened read-only", "open it with write=True (this is a bug)"
            )

    def write_batch(self, batch: Sequence[IndexedFile | FailedFile]) -> BatchResult:
        """Commit a batch to the catalog, then mirror it in the in-memory indices."""
        self._require_writer()
        for modality in {s.modality for f in batch if hasattr(f, "segments") for s in f.segments}:
            self.vectors.index(modality)  # load before the commit: then the delta applies as is
        result = self.catalog.write_batch(batch)
        self.vectors.apply(result)
        return result

    def delete_files(self, file_ids: Sequence[int]) -> BatchResult:
        self._require_writer()
        result = self.catalog.delete_files(file_ids)
        self.vectors.apply(result)
        return result

    def set_modality(
        self, modality: Modality, model_id: str, preprocess_version: str, dim: int | None = None
    ) -> ModalityChange:
        self._require_writer()
        change = self.catalog.set_modality(modality, model_id, preprocess_version, dim)
        self.vectors.apply(change)
        return change

    def save(self) -> list[Modality]:
        """Write the changed indices (atomically); returns the modalities written."""
        self._require_writer()
        return self.vectors.save()

    # ------------------------------------------------------------------------ reading

    def search(
        self, modality: Modality, queries: np.ndarray, k: int, *, where: SegmentFilter | None = None
    ) -> SearchResult:
        """Top-k segment ids and scores per query; `where` filters by the segments' files."""
        allowed = None
        if where is not None and not where.is_empty():
            allowed = self.catalog.segment_ids_matching(modality, where)  # empty if excluded
        return self.vectors.search(modality, queries, k, allowed=allowed)

    def check(self) -> list[IndexCheck]:
        """Compare every modality's index with the catalog id by id (repairing in memory; a
        writer also saves the repaired indices when it closes)."""
        return [self.vectors.check(m) for m in self.catalog.modality_states()]

    def stats(self, failed_limit: int = 100) -> LibraryStats:
        catalog = self.catalog.stats(failed_limit)
        vectors_dir = self.root / VECTORS_DIR
        vectors_bytes = sum(p.stat().st_size for p in vectors_dir.glob("*.faiss") if p.is_file())
        return LibraryStats(
            self.root, catalog, self.vectors.info(), catalog.catalog_bytes, vectors_bytes
        )

    def close(self) -> None:
        try:
            if self.writable:
                self.vectors.save()
                self.catalog.checkpoint()
        finally:
            self.catalog.close()
            self._lock.release()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _prepare_folder(where: LibraryLocation) -> Path:
    root = where.path
    if root.exists() and not root.is_dir():
        raise LibraryError(
            f"library path {root} (from {where.source}) is a file, not a folder",
            "choose a folder for the library (--library DIR or $LBSEARCH_HOME)",
        )
    if root.is_dir() and not (root / CATALOG_NAME).exists():
        strangers = sorted(
            p.name for p in root.iterdir() if p.name not in _KNOWN_ENTRIES and p.name[0] != "."
        )
        if strangers:
            raise LibraryError(
                f"{root} (from {where.source}) is not an lbsearch library and not empty "
                f"(it holds {', '.join(strangers[:3])}{'...' if len(strangers) > 3 else ''})",
                "a library needs its own folder: choose a new or empty one with --library DIR",
            )
    try:
        (root / VECTORS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LibraryError(
            f"cannot create the library folder {root}: {err.strerror or err}",
            "check the path and its permissions, or choose another with --library DIR",
        ) from err
    return root
