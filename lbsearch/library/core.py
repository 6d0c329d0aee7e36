"""`Library`: a library's catalog and vector indices, opened together to read or to write."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..types import Modality
from .folder import (
    CATALOG_NAME,
    VECTORS_DIR,
    LibraryError,
    LibraryLocation,
    locate_library,
    prepare_folder,
)
from .lock import WriterLock

if TYPE_CHECKING:
    import numpy as np

    from ..catalog import (
        BatchResult,
        CatalogStats,
        FailedFile,
        FileRecord,
        IndexedFile,
        ModalityChange,
        ModalityState,
        SegmentFilter,
        SegmentHit,
    )
    from ..catalog.store import Catalog
    from ..vectors import IndexCheck, IndexInfo, SearchResult, VectorStore


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
        from ..catalog.store import Catalog
        from ..vectors.store import VectorStore, clean_temporary_files

        root = prepare_folder(where)
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
        from ..catalog.store import Catalog, CatalogMigrationNeeded
        from ..vectors.store import VectorStore

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

    def modality_states(self) -> dict[Modality, ModalityState]:
        """Each registered modality's model, vector size and segment count."""
        return self.catalog.modality_states()

    def file_by_path(self, path: str) -> FileRecord | None:
        return self.catalog.file_by_path(path)

    def stored_vectors(self, record: FileRecord) -> np.ndarray | None:
        """(n, d) vectors held for `record`'s content under its modality's current model."""
        import numpy as np

        state = self.catalog.modality_state(record.modality) if record.modality else None
        if state is None or record.content_hash is None:
            return None
        stored = self.catalog.segments_for_hash(record.content_hash, state.modality, state.model_id)
        return np.stack([s.vector for s in stored]) if stored else None

    def segments_by_ids(self, ids: Sequence[int] | np.ndarray) -> dict[int, SegmentHit]:
        """Search results' segments with their files (ids gone meanwhile are absent)."""
        return self.catalog.segments_by_ids(ids)

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
