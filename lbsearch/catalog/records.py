"""Typed values at the catalog's boundary: what goes in, what comes out. No SQL here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from ..errors import LbsearchError
from ..types import Modality

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    IdArray = npt.NDArray[np.int64]
    VectorArray = npt.NDArray[np.float32]


class CatalogError(LbsearchError):
    """The catalog database cannot be opened, read or written as asked."""


class ModelChangedError(CatalogError):
    """A modality's checkpoint differs from the one its stored vectors were made with."""

    exit_code = 2

    def __init__(self, modality: Modality, old: str, new: str, where: os.PathLike[str]) -> None:
        self.modality, self.old, self.new = modality, old, new
        super().__init__(
            f"{where}: the {modality} vectors were made with model {old!r}, and this run would "
            f"use {new!r} (another vector space); nothing was changed",
            f"pass --reembed to re-embed the {modality} files with the new model (the old "
            "vectors keep serving until it is done), or configure the old model again",
        )


class FileStatus(StrEnum):
    """Where a file stands. `stale`: written by lbsearch before schema v3, when a model change
    wiped a modality; such a file is embedded again (its size, mtime and content hash are still
    valid). Nothing makes files stale any more: a model change is a `--reembed` beside the old
    vectors."""

    INDEXED = "indexed"
    FAILED = "failed"
    STALE = "stale"


@dataclass(frozen=True)
class FileIdentity:
    """What `os.stat` says of a file, as far as deciding "unchanged" goes: the same size, mtime,
    ctime, device and inode mean the same file with the same bytes, without reading it."""

    size: int
    mtime_ns: int
    ctime_ns: int | None = None
    dev: int | None = None
    ino: int | None = None

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)


@dataclass(frozen=True)
class FileRecord:
    """One file as the catalog knows it. `identity` decides whether it changed; ctime, dev and
    ino are None for rows written before schema v3 (such a row is checked again once)."""

    id: int
    path: str
    root: str
    size: int
    mtime_ns: int
    content_hash: str | None
    modality: Modality | None
    status: FileStatus
    reason: str | None
    detail: str | None
    duration_s: float | None
    width: int | None
    height: int | None
    model_id: str | None
    indexed_at: float
    ctime_ns: int | None = None
    dev: int | None = None
    ino: int | None = None

    @property
    def identity(self) -> FileIdentity:
        return FileIdentity(self.size, self.mtime_ns, self.ctime_ns, self.dev, self.ino)

    def unchanged(self, st: os.stat_result) -> bool:
        """True if `st` (os.stat of the path) is the recorded file: size, mtime, ctime, device
        and inode all equal, so there is no need to read it."""
        return self.identity == FileIdentity.of(st)


@dataclass(frozen=True)
class SegmentRecord:
    """One embedded segment; its id is also its id in the modality's FAISS index."""

    id: int
    file_id: int
    modality: Modality
    start_s: float
    end_s: float
    model_id: str


@dataclass(frozen=True)
class SegmentHit:
    """A segment with the file it belongs to (what search results are built from). `offline`:
    the file lies in a folder the last run could not list (kept, but not reachable now)."""

    segment: SegmentRecord
    file: FileRecord
    offline: bool = False


@dataclass(frozen=True)
class NewSegment:
    """A segment to store: `vector` is the encoder's float32 output of the modality's dimension."""

    modality: Modality
    start_s: float
    end_s: float
    model_id: str
    vector: VectorArray
    preprocess_version: str | None = None  # None: the modality's current version


@dataclass(frozen=True)
class StoredSegment:
    """A segment's stored vector, for reuse by a file with the same content."""

    start_s: float
    end_s: float
    vector: VectorArray
    preprocess_version: str | None = None


@dataclass(frozen=True)
class IndexedFile:
    """A file that was embedded (or whose vectors were reused); replaces any earlier row."""

    path: str
    root: str
    size: int
    mtime_ns: int
    content_hash: str
    modality: Modality
    segments: tuple[NewSegment, ...]
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    model_id: str | None = None
    ctime_ns: int | None = None
    dev: int | None = None
    ino: int | None = None


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be embedded; `reason` is a stable code (see lbsearch.media.reasons)."""

    path: str
    root: str
    size: int
    mtime_ns: int
    reason: str
    detail: str
    modality: Modality | None = None
    content_hash: str | None = None
    ctime_ns: int | None = None
    dev: int | None = None
    ino: int | None = None


@dataclass(frozen=True)
class ModalityState:
    """The model a modality's vectors come from, and the counter of changes to its segments."""

    modality: Modality
    model_id: str
    preprocess_version: str
    dim: int | None
    generation: int
    segment_count: int
    updated_at: float
    shadow: ShadowModel | None = None


@dataclass(frozen=True)
class ShadowModel:
    """The model a `--reembed` is embedding a modality with, beside the serving one."""

    model_id: str
    preprocess_version: str
    dim: int | None


@dataclass(frozen=True)
class OfflineFolder:
    """A folder (a root, or one inside it) that could not be listed at a run: its files are
    kept and marked offline until a run lists it again or the user forgets them."""

    folder: str
    root: str
    reason: str
    since: float
    files: int = 0


class DeltaKind(StrEnum):
    """What a committed write did to a modality: changed some segments, or replaced its model
    (every segment wiped; the vector dimension may differ from then on)."""

    SEGMENTS = "segments"
    MODEL = "model"


@dataclass(frozen=True)
class ModalityDelta:
    """What one committed write did to a modality's segments, for its vector index to follow:
    the generation it moved the modality from and to, the segments added and removed."""

    modality: Modality
    generation_before: int
    generation: int
    added_ids: IdArray
    added_vectors: VectorArray
    removed_ids: IdArray
    kind: DeltaKind = DeltaKind.SEGMENTS
    dim: int | None = None


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one catalog transaction: file ids in input order, and per-modality deltas."""

    file_ids: tuple[int, ...] = ()
    deltas: dict[Modality, ModalityDelta] = field(default_factory=dict)


@dataclass(frozen=True)
class ModalityChange:
    """What set_modality did (nothing, a first registration, a new preprocessing version), or
    what switching to a re-embedded model did (`replaced_segments` old vectors gave way)."""

    modality: Modality
    previous: ModalityState | None
    current: ModalityState
    replaced_segments: int = 0
    failed_files: int = 0
    delta: ModalityDelta | None = None

    @property
    def changed(self) -> bool:
        return self.delta is not None


@dataclass(frozen=True)
class IdSnapshot:
    """The sorted segment ids of a modality at one generation (one read transaction)."""

    modality: Modality
    generation: int
    ids: IdArray


@dataclass(frozen=True)
class VectorChunk:
    """A slice of a modality's stored vectors; every chunk of one stream has the same generation."""

    generation: int
    ids: IdArray
    vectors: VectorArray


@dataclass(frozen=True)
class SegmentFilter:
    """Conditions on a segment's file, for search. Empty fields do not filter.

    `path_globs`: SQLite GLOB patterns (case-sensitive, `*` also matches `/`) against the absolute
    path; any one matching is enough. `under`: folders the file must be in.
    `modified_after`/`modified_before`: Unix seconds. Durations in seconds; files without a
    duration (images) fail any duration condition.
    """

    modalities: tuple[Modality, ...] = ()
    path_globs: tuple[str, ...] = ()
    under: tuple[str, ...] = ()
    modified_after: float | None = None
    modified_before: float | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None

    def is_empty(self) -> bool:
        return self == SegmentFilter()


@dataclass(frozen=True)
class RunCounts:
    """Totals of one `lbsearch index` run (filled in by the indexer)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    reused: int = 0
    removed: int = 0
    failed: int = 0
    offline: int = 0  # files kept because their folder could not be listed


@dataclass(frozen=True)
class RunRecord:
    id: int
    started_at: float
    finished_at: float | None
    roots: tuple[str, ...]
    status: str  # running | finished | interrupted | offline (finished, some folders offline)
    counts: RunCounts
    encodings: dict[str, str] = field(default_factory=dict)  # modality -> backend/dtype used


@dataclass(frozen=True)
class ModalityStats:
    modality: Modality
    files: dict[FileStatus, int]
    segments: int
    state: ModalityState | None


@dataclass(frozen=True)
class RootStats:
    root: str
    files: int
    last_indexed_at: float


@dataclass(frozen=True)
class CatalogStats:
    """Everything `lbsearch status` shows about the catalog, read in one snapshot."""

    library_id: str
    schema_version: int
    files: int
    segments: int
    modalities: tuple[ModalityStats, ...]
    failures_by_reason: dict[str, int]
    failed_files: tuple[FileRecord, ...]
    roots: tuple[RootStats, ...]
    last_run: RunRecord | None
    catalog_bytes: int
    offline: tuple[OfflineFolder, ...] = ()
