"""The look-ups every search makes, as plain SQL on the driver's connection.

A warm search at 100k segments read the catalog about a dozen times through SQLAlchemy (8 ms of
a 14 ms search, measured); the same SQL on the sqlite3 connection, in one read transaction
(`snapshot()`), with rows unpacked by position, costs a fraction of that. What a search needs:
the files of its candidate segments (to rank them as arrays), every window of the files found
(for moments), and the whole rows of the few shown.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from ..types import Modality
from .engine import CatalogBase
from .reads import filter_clauses
from .records import FileRecord, FileStatus, SegmentFilter, SegmentHit, SegmentRecord
from .rows import FILE_COLUMNS, chunks, enc
from .schema import files, segments

_MODALITIES = {m.value: m for m in Modality}


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


class CatalogLookups(CatalogBase):
    """Search look-ups of `Catalog`."""

    def segment_files(self, ids: Sequence[int] | np.ndarray) -> SegmentFiles:
        """The file id and path of each segment of `ids` (those that exist): no record
        objects, for the hundreds of candidates a search ranks."""
        rows: list[Any] = []
        with self._raw_read() as conn:
            for part in chunks(sorted({int(i) for i in ids})):
                rows += conn.execute(_FILES_OF.format(marks=_marks(part)), part).fetchall()
        return SegmentFiles(
            np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)),
            _paths([r[2] for r in rows]),
        )

    def segment_windows(self, paths: Sequence[str]) -> SegmentWindows:
        """Every segment (of every modality) of the files at `paths`, from the path and file
        indices: the windows a search's videos and audio files are scored over."""
        rows: list[Any] = []
        with self._raw_read() as conn:
            for part in chunks(sorted({enc(p) for p in paths})):
                rows += conn.execute(_WINDOWS_OF.format(marks=_marks(part)), part).fetchall()
        rows.sort(key=lambda r: r[0])
        modalities = np.empty(len(rows), dtype=object)
        modalities[:] = [_MODALITIES[r[2]] for r in rows]
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
                    hit = _segment_hit(row, made)
                    hits[hit.segment.id] = hit
        return hits

    def _filtered_segments(
        self, ids: list[int], where: SegmentFilter, made: dict[int, FileRecord]
    ) -> dict[int, SegmentHit]:
        base = select(*_SEGMENT_COLUMNS, *FILE_COLUMNS).join(
            files, files.c.id == segments.c.file_id
        )
        hits: dict[int, SegmentHit] = {}
        with self._read() as conn:
            for part in chunks(ids):
                rows = conn.execute(base.where(segments.c.id.in_(part), *filter_clauses(where)))
                for row in rows:
                    hit = _segment_hit(row, made)
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


_SEGMENT_COLUMNS = tuple(c.label(f"s_{c.name}") for c in segments.c if c.name != "vector")
_BY_IDS = (
    "SELECT "
    + ", ".join(f"segments.{c.name} AS s_{c.name}" for c in segments.c if c.name != "vector")
    + ", "
    + ", ".join(f"files.{c.name} AS {c.name}" for c in files.c)
    + " FROM segments JOIN files ON files.id = segments.file_id WHERE segments.id IN ({marks})"
)
_FILES_OF = (
    "SELECT segments.id, segments.file_id, files.path FROM segments "
    "JOIN files ON files.id = segments.file_id WHERE segments.id IN ({marks}) ORDER BY segments.id"
)
_WINDOWS_OF = (
    "SELECT segments.id, files.path, segments.modality, segments.start_s, segments.end_s "
    "FROM files JOIN segments ON segments.file_id = files.id WHERE files.path IN ({marks})"
)
_SEGMENT_AT = {c.name: i for i, c in enumerate(c for c in segments.c if c.name != "vector")}
_FILE_AT = len(_SEGMENT_AT)  # the file's columns follow the segment's, in FileRecord's order
assert [c.name for c in files.c] == [f.name for f in dataclasses.fields(FileRecord)]


def _segment_hit(row: Any, made: dict[int, FileRecord]) -> SegmentHit:
    """A segment row joined with its file's (segment columns, then every file column), read
    by position: by name it cost ~3x more (~30 us a row; a moment search reads hundreds). A
    file's record is made once (`made`: a video's windows share it)."""
    at = _SEGMENT_AT
    file_id = row[at["file_id"]]
    segment = SegmentRecord(
        row[at["id"]],
        file_id,
        _MODALITIES[row[at["modality"]]],
        row[at["start_s"]],
        row[at["end_s"]],
        row[at["model_id"]],
    )
    file = made.get(file_id)
    if file is None:
        f = row[_FILE_AT:]
        modality = _MODALITIES[f[6]] if f[6] else None
        file = made[file_id] = FileRecord(
            f[0], os.fsdecode(f[1]), os.fsdecode(f[2]), f[3], f[4], f[5], modality,
            FileStatus(f[7]), *f[8:],
        )  # fmt: skip
    return SegmentHit(segment, file)
