"""The catalog: SQLite (through SQLAlchemy, WAL mode), the library's source of truth.

The typed records are importable cheaply; `Catalog` (which pulls in SQLAlchemy and numpy) is
loaded on first use, so importing this package keeps `lbsearch --help` instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hashing import hash_file, hash_stream
from .records import (
    BatchResult,
    CatalogError,
    CatalogStats,
    DeltaKind,
    FailedFile,
    FileIdentity,
    FileRecord,
    FileStatus,
    IdSnapshot,
    IndexedFile,
    ModalityChange,
    ModalityDelta,
    ModalityState,
    ModalityStats,
    ModelChangedError,
    NewSegment,
    OfflineFolder,
    RootStats,
    RunCounts,
    RunRecord,
    SegmentFilter,
    SegmentHit,
    SegmentRecord,
    ShadowModel,
    StoredSegment,
    VectorChunk,
)

if TYPE_CHECKING:
    from .schema import SCHEMA_VERSION
    from .store import Catalog, CatalogMigrationNeeded

__all__ = [
    "SCHEMA_VERSION",
    "BatchResult",
    "Catalog",
    "CatalogError",
    "CatalogMigrationNeeded",
    "CatalogStats",
    "DeltaKind",
    "FailedFile",
    "FileIdentity",
    "FileRecord",
    "FileStatus",
    "IdSnapshot",
    "IndexedFile",
    "ModalityChange",
    "ModalityDelta",
    "ModalityState",
    "ModalityStats",
    "ModelChangedError",
    "NewSegment",
    "OfflineFolder",
    "RootStats",
    "RunCounts",
    "RunRecord",
    "SegmentFilter",
    "SegmentHit",
    "SegmentRecord",
    "ShadowModel",
    "StoredSegment",
    "VectorChunk",
    "hash_file",
    "hash_stream",
]


def __getattr__(name: str) -> Any:
    if name in ("Catalog", "CatalogMigrationNeeded"):
        from . import store

        return getattr(store, name)
    if name == "SCHEMA_VERSION":
        from .schema import SCHEMA_VERSION

        return SCHEMA_VERSION
    raise AttributeError(f"module 'lbsearch.catalog' has no attribute {name!r}")
