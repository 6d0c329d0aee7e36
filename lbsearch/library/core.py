"""`Library`: a library's catalog and vector indices, opened together to read or to write.

The one place where the catalog and the indices meet: writers change the catalog through it so
the indices follow each committed batch, and readers (the search engine, `status`, a server) ask
it for files, segments and nearest neighbours without touching either store directly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..config import Config
from ..types import Modality
from ..vectors.kinds import BiasKind
from .events import IndexCheck, IndexEvent, IndexInfo
from .folder import (
    CATALOG_NAME,
    VECTORS_DIR,
    LibraryError,
    LibraryLocation,
    is_writable,
    locate_library,
    prepare_folder,
    refuse_read_only,
)
from .lock import WriterLock
from .writes import LibraryWrites

if TYPE_CHECKING:
    import numpy as np

    from ..catalog import (
        CatalogStats,
        FileRecord,
        ModalityState,
        OfflineFolder,
        SegmentFilter,
        SegmentHit,
        StoredSegment,
    )
    from ..catalog.lookups import SegmentFiles, SegmentWindows
    from ..catalog.store import Catalog
    from ..vectors import SearchResult, VectorStore
    from ..vectors.bias import Bank
    from ..vectors.filesample import FileSample
    from .indices import LibraryIndices


def _states_key(states: dict[Modality, ModalityState]) -> tuple[object, ...]:
    """What changes whenever a modality's segments do (see Library.modality_states)."""
    return tuple(
        (m.value, s.model_id, s.generation, s.updated_at, s.dim) for m, s in sorted(states.items())
    )


def is_under_any(path: str, folders: Sequence[str]) -> bool:
    """`path` is one of `folders` or lies inside one of them."""
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


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


class Library(LibraryWrites):
    """A library folder opened for reading (any number at once) or writing (one at a time).

    Use `Library.open`, as a context manager. Writers change the catalog through this class so
    the vector indices follow each committed batch; `save()` writes the indices (call it now and
    then during a long run and at the end; a crash in between is repaired at the next open).
    A long-lived reader calls `refresh()` between requests to see what writers committed since.
    """

    def __init__(
        self, root: Path, catalog: Catalog, vectors: VectorStore, lock: WriterLock, writable: bool
    ) -> None:
        from .indices import LibraryIndices

        self.root = root
        self._catalog = catalog  # the source of truth; written only through this class
        self._view: Catalog | None = None if writable else catalog
        self.writable = writable
        self._lock = lock
        self._indices: LibraryIndices = LibraryIndices(catalog, vectors)
        self._counted: tuple[tuple[object, ...], dict[Modality, ModalityState]] | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog, opened read-only (a second connection for a writer): for reading and
        checks only; every write goes through this class's methods."""
        if self._view is None:
            from ..catalog.store import Catalog

            self._view = Catalog(self._catalog.path, read_only=True)
        return self._view

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | LibraryLocation | None = None,
        *,
        config: Config | None = None,
        write: bool = False,
        lock_timeout_s: float | None = None,
        purpose: str = "lbsearch index",
        mapped: bool = False,
    ) -> Library:
        """Open the library at `location` (resolved with locate_library when not a Location).

        write=True creates the folder if needed, takes the writer lock (waiting up to
        lock_timeout_s, default from config) and repairs any index a crash left behind.
        write=False needs an existing library and never waits for an indexer (it only tries the
        lock, without waiting, if the catalog's schema must be upgraded first). `mapped` (a
        reader that searches once, as a cold `lbsearch query`): up-to-date index files are
        searched in place, memory-mapped, instead of copied into memory.
        """
        config = config or Config()
        if isinstance(location, LibraryLocation):
            where = location
        else:
            where = locate_library(location, config.library)
        timeout = config.library.lock_timeout_s if lock_timeout_s is None else lock_timeout_s
        if write:
            return cls._open_writer(where, config, timeout, purpose)
        return cls._open_reader(where, config, timeout, mapped)

    @classmethod
    def _open_writer(
        cls, where: LibraryLocation, config: Config, timeout: float, purpose: str
    ) -> Library:
        from ..catalog.store import Catalog

        root = prepare_folder(where)
        refuse_read_only(root, where)
        lock = WriterLock(root)
        lock.acquire(timeout, purpose)
        try:
            catalog = Catalog(
                root / CATALOG_NAME, create=True, busy_timeout_s=config.library.busy_timeout_s
            )
            catalog.add_search_indexes()  # a catalog from before them gets them once
            vectors = _vector_store(root, config)
            vectors.clean_temporary_files()
            library = cls(root, catalog, vectors, lock, writable=True)
            library._indices.recover()
        except BaseException:
            lock.release()
            raise
        return library

    @classmethod
    def _open_reader(
        cls, where: LibraryLocation, config: Config, timeout: float, mapped: bool
    ) -> Library:
        root = where.path
        if not (root / CATALOG_NAME).is_file():
            raise LibraryError(
                f"no lbsearch library at {root} (chosen by {where.source})",
                "run `lbsearch index FOLDER` first, or point --library / $LBSEARCH_HOME at it",
            )
        lock = WriterLock(root)
        busy = config.library.busy_timeout_s
        writable = is_writable(root)
        if mapped and writable:  # one search: read without importing SQLAlchemy if it can
            from ..catalog.searching import SearchCatalog

            quick = SearchCatalog.open(root / CATALOG_NAME, busy)
            if quick is not None:  # answers every other Catalog method through a full one
                return cls(
                    root, cast("Catalog", quick), _vector_store(root, config, True), lock, False
                )
        from ..catalog.store import Catalog, CatalogMigrationNeeded

        if not writable:  # a read-only mount or a shared copy: read it as it is
            catalog = Catalog(root / CATALOG_NAME, busy_timeout_s=busy, read_only=True)
            return cls(root, catalog, _vector_store(root, config, mapped), lock, False)
        try:
            catalog = Catalog(root / CATALOG_NAME, migrate=False, busy_timeout_s=busy)
        except CatalogMigrationNeeded:
            with contextlib.ExitStack() as stack:
                lock.acquire(timeout, "lbsearch (upgrading the catalog)")
                stack.callback(lock.release)
                catalog = Catalog(root / CATALOG_NAME, busy_timeout_s=busy)
        return cls(root, catalog, _vector_store(root, config, mapped), lock, False)

    # ------------------------------------------------------------------ reading: catalog

    def iter_files(self, under: str | None = None) -> Iterator[FileRecord]:
        """Files inside folder `under` (all when None), in path order."""
        return self._catalog.iter_files(under)

    def offline_folders(self) -> tuple[OfflineFolder, ...]:
        """Folders the last run could not list, with the files kept under each."""
        return self._catalog.offline_folders()

    def roots(self) -> tuple[str, ...]:
        """Every folder the library's files were indexed from (online or offline)."""
        return self._catalog.roots()

    def file_by_path(self, path: str) -> FileRecord | None:
        return self._catalog.file_by_path(path)

    def files_by_paths(self, paths: Sequence[str]) -> dict[str, FileRecord]:
        return self._catalog.files_by_paths(paths)

    def segments_by_ids(
        self, ids: Sequence[int] | np.ndarray, where: SegmentFilter | None = None
    ) -> dict[int, SegmentHit]:
        """Segments with their files by id; ids gone (or filtered out by `where`) are absent.
        A file under a folder the last run could not list is marked `offline`."""
        found = self._catalog.segments_by_ids(ids, where)
        folders = self._catalog.offline_paths() if found else ()
        if not folders:
            return found
        return {
            i: replace(hit, offline=True) if is_under_any(hit.file.path, folders) else hit
            for i, hit in found.items()
        }

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Catalog reads of this thread inside see one state of the library (one read
        transaction): what a search wraps its look-ups in."""
        with self._catalog.snapshot():
            yield

    def segment_windows(self, paths: Sequence[str]) -> SegmentWindows:
        """Every segment of the files at `paths` (id, path, modality, span), for moments."""
        return self._catalog.segment_windows(paths)

    def segment_files(self, ids: Sequence[int] | np.ndarray) -> SegmentFiles:
        """Each segment's file id and path (ids gone are absent), for ranking search results
        before the few shown are read whole with `segments_by_ids`."""
        return self._catalog.segment_files(ids)

    def segments_for_hash(
        self, content_hash: str, modality: Modality, model_id: str
    ) -> tuple[StoredSegment, ...] | None:
        """The stored segments (with vectors) of a file with this content and model; None if
        no file has them (lets a renamed or duplicated file reuse vectors)."""
        return self._catalog.segments_for_hash(content_hash, modality, model_id)

    def modality_states(self) -> dict[Modality, ModalityState]:
        """Per registered modality: its model, vector dimension and segment count.

        The counts scan the segment ids (12 ms a search at 100k segments, measured), so they
        are kept while no modality's generation, model or update time has changed: every write
        of segments moves the generation (a cheap read tells)."""
        states = self._catalog.modality_states(counts=False)
        counted = self._counted
        if counted is None or counted[0] != _states_key(states):
            fresh = self._catalog.modality_states()
            counted = self._counted = (_states_key(fresh), fresh)
        return dict(counted[1])

    def file_by_id(self, file_id: int) -> FileRecord | None:
        return self._catalog.file_by_id(file_id)

    def stored_vectors(self, record: FileRecord) -> np.ndarray | None:
        """(n, d) vectors held for `record`'s content under its modality's current model."""
        import numpy as np

        state = self._catalog.modality_state(record.modality) if record.modality else None
        if state is None or record.content_hash is None:
            return None
        stored = self.segments_for_hash(record.content_hash, state.modality, state.model_id)
        return np.stack([s.vector for s in stored]) if stored else None

    # ------------------------------------------------------------------ reading: vectors

    def index_size(self, modality: Modality) -> int:
        """Vectors in the modality's index (loading it if needed); 0 when it has none."""
        index = self._indices.index(modality)
        return index.ntotal if index is not None else 0

    def search(
        self,
        modality: Modality,
        queries: np.ndarray,
        k: int,
        *,
        where: SegmentFilter | None = None,
        among: np.ndarray | None = None,
        alpha: float = 0.0,
        bias: BiasKind = BiasKind.TEXT,
    ) -> SearchResult:
        """Top-k segment ids and scores per query; `where` filters by the segments' files,
        `among` (segment ids of this modality, from a catalog read) names the only candidates,
        each scored exactly (none missed by an approximate index).
        Scores are `cosine - alpha * bias` (the hubness correction; alpha 0: raw cosine), the
        bias of text queries or of example-file queries (`bias`)."""
        allowed = among
        if where is not None and not where.is_empty():
            matching = self._catalog.segment_ids_matching(modality, where)  # empty if excluded
            if among is not None:
                import numpy as np

                matching = np.intersect1d(matching, among)
            allowed = matching
        from .index_search import search_index  # with the indices: loaded on first use

        every = among is not None
        return search_index(self._indices, modality, queries, k, allowed, alpha, bias, every)

    def use_bank(self, modality: Modality, bank: Bank) -> None:
        """Compute the modality's bias column with `bank` from now on (a writer saves the bank
        and the index rebuilt with it; a reader uses it in memory)."""
        self._indices.use_bank(modality, bank, persist=self.writable)

    def segment_biases(
        self, modality: Modality, ids: np.ndarray, bias: BiasKind = BiasKind.TEXT
    ) -> np.ndarray:
        """The hubness bias (of text or example-file queries) of each segment id, as its index
        holds it."""
        return self._indices.biases(modality, ids, bias)

    def segment_sample(
        self, modality: Modality, bias: BiasKind = BiasKind.FILE
    ) -> tuple[np.ndarray, np.ndarray]:
        """A random sample of the modality's stored vectors, with their biases."""
        return self._indices.sample(modality, bias)

    def file_sample(self) -> FileSample | None:
        """The library's sample of its own segments (the bank of example-file queries)."""
        return self._indices.references.file_sample()

    def draw_file_sample(self, size: int, k: int) -> FileSample | None:
        """A new sample of the library's segments (not used until `use_file_sample`)."""
        from .sampling import draw_file_sample

        return draw_file_sample(self._catalog, size, k)

    def use_file_sample(self, sample: FileSample) -> None:
        """Compute every file-bias column with `sample` from now on (a writer saves it and the
        indices rebuilt with it; a reader uses it in memory)."""
        self._indices.use_file_sample(sample, persist=self.writable)

    def use_references(
        self, banks: dict[Modality, Bank], sample: FileSample | None, *, drop_sample: bool = False
    ) -> None:
        """`use_bank` for each of `banks` and `use_file_sample(sample)` (when given) at once:
        every index built with other ones rebuilt in one pass for both bias columns.
        `drop_sample`: no sample from now on (`file_sample = 0`; a writer deletes its file), so
        the file-bias columns are 0."""
        self._indices.use_references(banks, sample, persist=self.writable, drop_sample=drop_sample)

    def bank_fingerprint(self, modality: Modality) -> str:
        """The fingerprint of the bank the modality's index file was built with ("": none)."""
        meta = self._indices.store.read_meta(modality)
        return meta.bias if meta is not None else ""

    def null_moments(self, modality: Modality) -> dict[str, list[float]] | None:
        """The modality's null moments (lbsearch.vectors.bias), loading its index if needed."""
        return self._indices.null(modality)

    def refresh(self) -> dict[Modality, IndexEvent]:
        """See what writers committed since the indices were loaded: every loaded index whose
        modality changed is reloaded (from its file, repaired from the catalog where the file is
        behind) and swapped in whole. Returns what reloading took, per modality reloaded."""
        return self._indices.refresh()

    @property
    def index_events(self) -> dict[Modality, IndexEvent]:
        """What loading each index took (fresh, repaired, rebuilt), per modality loaded."""
        return dict(self._indices.events)

    def index_info(self) -> tuple[IndexInfo, ...]:
        """Per modality: its index file and whether it matches the catalog (files only)."""
        return self._indices.info()

    def check(self) -> list[IndexCheck]:
        """Compare every modality's index with the catalog id by id (repairing in memory; a
        writer also saves the repaired indices when it closes)."""
        return [self._indices.check(m) for m in self._catalog.modality_states()]

    def stats(self, failed_limit: int = 100) -> LibraryStats:
        catalog = self._catalog.stats(failed_limit)
        run = catalog.last_run
        if run is not None and run.status == "running" and not self._lock.held_elsewhere():
            # the process that started it is gone (killed, crashed): nobody holds the lock
            catalog = replace(catalog, last_run=replace(run, status="interrupted"))
        return LibraryStats(
            self.root,
            catalog,
            self._indices.info(),
            catalog.catalog_bytes,
            self._indices.store.file_bytes(),
        )

    def close(self) -> None:
        try:
            if self.writable:
                self._indices.save()
                self._catalog.checkpoint()
        finally:
            self._catalog.close()
            if self._view is not None and self._view is not self._catalog:
                self._view.close()
            self._lock.release()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _vector_store(root: Path, config: Config, mapped: bool = False) -> VectorStore:
    """The library's vector indices, searched on the encoders' GPU when FAISS has CUDA."""
    from ..vectors.store import VectorStore

    device = config.runtime.device
    return VectorStore(root / VECTORS_DIR, config.index, encoder_device=device, mapped=mapped)
