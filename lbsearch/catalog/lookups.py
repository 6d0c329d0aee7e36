"""The reads every search makes, as plain SQL on the driver's sqlite3 connection.

A warm search at 100k segments read the catalog about a dozen times through SQLAlchemy (8 ms of
a 14 ms search, measured); the same SQL on the sqlite3 connection, in one read transaction
(`snapshot()`), with rows unpacked by position, costs a fraction of that. What a search needs:
the modalities' states, the files of its candidate segments (to rank them as arrays), every
window of the files found (for moments), the whole rows of the few shown, the offline folders.

Nothing here imports SQLAlchemy: the full `Catalog` and the one a cold query opens
(`searching.SearchCatalog`) share these reads, each giving them its own `_raw_read()`.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..types import Modality
from .records import (
    FileRecord,
    FileStatus,
    ModalityState,
    SegmentFilter,
    SegmentHit,
    SegmentRecord,
)
from .shape import (
    FILE_COLUMNS,
    ID_COVER,
    MODALITIES,
    SEGMENT_COLUMNS,
    chunks,
    enc,
    has_index,
    read_states,
)


@dataclasses.dataclass(frozen=True)
class SegmentFiles:
    """Segments' files as parallel arrays sorted by segment id: what ranking search results
    needs before the few shown are read whole (`segments_by_ids`)."""

    ids: np.ndarray  # int64
    file_ids: np.ndarray  # int64
    paths: np.ndarray  # object: str


@dataclasses.dataclass(frozen=True)
class SegmentWindows:
    """Every segment of some files as parallel arrays sorted by segment id (a video's picture
    and sound windows, an audio file's sound windows): what moments are made of."""

    ids: np.ndarray  # int64
    paths: np.ndarray  # object: str
    modalities: np.ndarray  # object: Modality
    starts: np.ndarray  # float64
    ends: np.ndarray  # float64

    def of(self, modality: Modality) -> SegmentWindows:
        keep = self.modalities == modality
        return SegmentWindows(*(getattr(self, f.name)[keep] for f in dataclasses.fields(self)))


class CatalogLookups:
    """A search's reads, for a class that gives them `_raw_read()` (one read transaction on
    the driver's connection, or the thread's snapshot) and `_filtered_segments` (a filtered
    search's rows, built with SQLAlchemy by the full catalog)."""

    # whether the catalog has the covering index (`_files_of`); a class default, so that looking
    # it up never reaches `SearchCatalog.__getattr__` (which opens a full catalog)
    _id_cover: bool | None = None

    if TYPE_CHECKING:  # provided by the class this is mixed into
        _pinned: threading.local  # .conn: the thread's snapshot transaction, if any

        @contextmanager
        def _raw_read(self) -> Iterator[sqlite3.Connection]: ...

        def _read_transaction(self) -> AbstractContextManager[Any]: ...

        def _filtered_segments(
            self, ids: list[int], where: SegmentFilter, made: dict[int, FileRecord]
        ) -> dict[int, SegmentHit]: ...

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read this thread makes inside is one read transaction: a search's dozen
        look-ups see one state of the catalog (not a writer's commit half-way through), and
        pay for one BEGIN (through SQLAlchemy each read transaction cost ~0.1 ms, measured).
        Nested snapshots join the outer one; writes still run in transactions of their own."""
        if getattr(self._pinned, "conn", None) is not None:
            yield
            return
        with self._read_transaction() as conn:
            self._pinned.conn = conn
            try:
                yield
            finally:
                self._pinned.conn = None

    def modality_state(self, modality: Modality) -> ModalityState | None:
        """The modality's model, generation and segment count (None if never registered)."""
        with self._raw_read() as conn:
            state = read_states(conn).get(modality)
            if state is None:
                return None
            (count,) = conn.execute(
                "SELECT count(*) FROM segments WHERE modality = ?", (modality.value,)
            ).fetchone()
        return dataclasses.replace(state, segment_count=int(count or 0))

    def modality_states(self, *, counts: bool = True) -> dict[Modality, ModalityState]:
        """Every registered modality; counts=False leaves segment_count at 0 and skips the
        count (a scan of the segment ids), for callers that only need generations."""
        with self._raw_read() as conn:
            return read_states(conn, counts=counts)

    def offline_paths(self) -> tuple[str, ...]:
        """The offline folders' paths only (cheap: read on every search to mark hits)."""
        with self._raw_read() as conn:
            return tuple(os.fsdecode(r[0]) for r in conn.execute("SELECT folder FROM offline"))

    def segment_files(self, ids: Sequence[int] | np.ndarray) -> SegmentFiles:
        """The file id and path of each segment of `ids` (those that exist): no record
        objects, for the hundreds of candidates a search ranks."""
        rows: list[Any] = []
        with self._raw_read() as conn:
            query = self._files_of(conn)
            for part in chunks(sorted({int(i) for i in ids})):
                rows += conn.execute(query.format(marks=_marks(part)), part).fetchall()
        return SegmentFiles(
            np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)),
            _paths([r[2] for r in rows]),
        )

    def _files_of(self, conn: sqlite3.Connection) -> str:
        """The candidates' files through the covering index where the catalog has one (SQLite
        prefers the table's own key to it, so it is named); looked for once per open catalog."""
        covered = self._id_cover
        if covered is None:
            covered = self._id_cover = has_index(conn, ID_COVER)
        return _FILES_OF_COVERED if covered else _FILES_OF

    def segment_windows(self, paths: Sequence[str]) -> SegmentWindows:
        """Every segment (of every modality) of the files at `paths`, from the path and file
        indices: the windows a search's videos and audio files are scored over."""
        rows: list[Any] = []
        with self._raw_read() as conn:
            for part in chunks(sorted({enc(p) for p in paths})):
                rows += conn.execute(_WINDOWS_OF.format(marks=_marks(part)), part).fetchall()
        rows.sort(key=lambda r: r[0])
        modalities = np.empty(len(rows), dtype=object)
        modalities[:] = [MODALITIES[r[2]] for r in rows]
        return SegmentWindows(
            np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            _paths([r[1] for r in rows]),
            modalities,
            np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows)),
            np.fromiter((r[4] for r in rows), dtype=np.float64, count=len(rows)),
        )

    def segments_by_ids(
        self, ids: Sequence[int] | np.ndarray, where: SegmentFilter | None = None
    ) -> dict[int, SegmentHit]:
        """Segments with their files, for search results; ids that are gone or filtered out are
        absent from the answer."""
        wanted = sorted({int(i) for i in ids})
        made: dict[int, FileRecord] = {}  # a video's segments share one record
        if where is not None:
            return self._filtered_segments(wanted, where, made)
        hits: dict[int, SegmentHit] = {}
        with self._raw_read() as conn:
            for part in chunks(wanted):
                for row in conn.execute(_BY_IDS.format(marks=_marks(part)), part):
                    hit = segment_hit(row, made)
                    hits[hit.segment.id] = hit
        return hits


def _marks(part: list[Any]) -> str:
    return ",".join("?" * len(part))


def _paths(raw: list[bytes]) -> np.ndarray:
    """Decoded paths, each distinct one once (a video's windows share one)."""
    decoded = {p: os.fsdecode(p) for p in dict.fromkeys(raw)}
    paths = np.empty(len(raw), dtype=object)
    paths[:] = [decoded[p] for p in raw]
    return paths


_BY_IDS = (
    "SELECT "
    + ", ".join(f"segments.{name}" for name in SEGMENT_COLUMNS)
    + ", "
    + ", ".join(f"files.{name}" for name in FILE_COLUMNS)
    + " FROM segments JOIN files ON files.id = segments.file_id WHERE segments.id IN ({marks})"
)
_FILES_OF = (
    "SELECT segments.id, segments.file_id, files.path FROM segments "
    "JOIN files ON files.id = segments.file_id WHERE segments.id IN ({marks}) ORDER BY segments.id"
)
_FILES_OF_COVERED = _FILES_OF.replace("FROM segments ", f"FROM segments INDEXED BY {ID_COVER} ")
# SQLite takes segments_file_cover for this one by itself, where the catalog has it
_WINDOWS_OF = (
    "SELECT segments.id, files.path, segments.modality, segments.start_s, segments.end_s "
    "FROM files JOIN segments ON segments.file_id = files.id WHERE files.path IN ({marks})"
)
_SEGMENT_AT = {name: i for i, name in enumerate(SEGMENT_COLUMNS)}
_FILE_AT = len(_SEGMENT_AT)  # the file's columns follow the segment's, in FileRecord's order


def segment_hit(row: Any, made: dict[int, FileRecord]) -> SegmentHit:
    """A segment row joined with its file's (segment columns, then every file column), read
    by position: by name it cost ~3x more (~30 us a row; a moment search reads hundreds). A
    file's record is made once (`made`: a video's windows share it)."""
    at = _SEGMENT_AT
    file_id = row[at["file_id"]]
    segment = SegmentRecord(
        row[at["id"]],
        file_id,
        MODALITIES[row[at["modality"]]],
        row[at["start_s"]],
        row[at["end_s"]],
        row[at["model_id"]],
    )
    file = made.get(file_id)
    if file is None:
        f = row[_FILE_AT:]
        modality = MODALITIES[f[6]] if f[6] else None
        file = made[file_id] = FileRecord(
            f[0], os.fsdecode(f[1]), os.fsdecode(f[2]), f[3], f[4], f[5], modality,
            FileStatus(f[7]), *f[8:],
        )  # fmt: skip
    return SegmentHit(segment, file)
