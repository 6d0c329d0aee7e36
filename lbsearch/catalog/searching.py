"""The catalog as one search reads it: plain sqlite3, without SQLAlchemy.

A cold `lbsearch query` reads a handful of things from the catalog (the modalities' states, its
candidates' files, the windows of the videos found, the rows shown), and importing SQLAlchemy
to read them took about a quarter of a second of a ~1 s query on a 2-core machine. This class
reads them on one sqlite3 connection that cannot write (`query_only`). Anything else asked of it
(a filtered search's rows, an index repaired from the catalog's vectors, an example file's
look-up) opens the full `Catalog` on first use and is answered by it, so a caller holding this
never meets a missing method.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from .lookups import CatalogLookups
from .records import CatalogError, FileRecord, SegmentFilter, SegmentHit
from .shape import SCHEMA_VERSION, translate_error

if TYPE_CHECKING:
    from .store import Catalog


class SearchCatalog(CatalogLookups):
    """A catalog opened to search it once; open with `SearchCatalog.open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, busy_timeout_s: float) -> None:
        self.path = path
        self.read_only = True
        self._conn = conn
        self._busy_timeout_s = busy_timeout_s
        self._pinned = threading.local()  # .conn: set while this thread is inside snapshot()
        self._using = threading.RLock()  # one connection: one transaction at a time
        self._full: Catalog | None = None
        self.library_id = self._library_id()

    @classmethod
    def open(cls, path: Path, busy_timeout_s: float) -> SearchCatalog | None:
        """The catalog at `path` for reading, or None where the full `Catalog` must open it
        (its schema needs an upgrade, or it cannot be read: that one says why and what to do)."""
        uri = f"file:{quote(str(path.absolute()))}?mode=rw"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error:
            return None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            conn.execute("PRAGMA query_only = 1")
            conn.execute("PRAGMA cache_size = -32768")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if int(version) != SCHEMA_VERSION:
                conn.close()
                return None
            return cls(path, conn, busy_timeout_s)
        except (sqlite3.Error, LookupError, CatalogError):
            conn.close()
            return None

    def close(self) -> None:
        if self._full is not None:
            self._full.close()
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _raw_read(self) -> Iterator[sqlite3.Connection]:
        if getattr(self._pinned, "conn", None) is not None:  # inside snapshot()
            with self._errors():
                yield self._conn
            return
        with self._read_transaction() as conn:
            yield conn

    @contextmanager
    def _read_transaction(self) -> Iterator[sqlite3.Connection]:
        with self._using, self._errors():
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise translate_error(self.path, str(err), self._busy_timeout_s) from err

    def _library_id(self) -> str:
        with self._raw_read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'library_id'").fetchone()
        if row is None:
            raise LookupError("no library id")  # the full catalog reports the damage
        return str(row[0])

    def _filtered_segments(
        self, ids: list[int], where: SegmentFilter, made: dict[int, FileRecord]
    ) -> dict[int, SegmentHit]:
        return self.full()._filtered_segments(ids, where, made)

    def full(self) -> Catalog:
        """The full catalog on the same file, opened on first use (it imports SQLAlchemy)."""
        with self._using:
            if self._full is None:
                from .store import Catalog

                self._full = Catalog(self.path, migrate=False, busy_timeout_s=self._busy_timeout_s)
            return self._full

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_full", "_using", "_conn", "_pinned"):
            raise AttributeError(name)  # not set yet (or copy/pickle probing): never delegate
        return getattr(self.full(), name)
