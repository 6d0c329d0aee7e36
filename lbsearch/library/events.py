"""What the library reports about its vector indices: typed events, file info, id checks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..types import Modality


class IndexAction(StrEnum):
    """What opening (or reopening) a modality's index took."""

    FRESH = "fresh"  # the file matched the catalog and was used as it was
    REPAIRED = "repaired"  # the file was behind: missing vectors added, stale ones removed
    REBUILT = "rebuilt"  # the file was missing, damaged or foreign: built from the catalog


@dataclass(frozen=True)
class IndexEvent:
    """One modality's index was loaded, repaired or rebuilt (never re-embedded: the vectors
    come from the catalog)."""

    modality: Modality
    action: IndexAction
    added: int = 0  # repaired: vectors added from the catalog
    removed: int = 0  # repaired: ids the catalog no longer has
    reason: str = ""  # rebuilt: why the file could not be used

    def __str__(self) -> str:
        if self.action is IndexAction.REPAIRED:
            return f"repaired: {self.added} added, {self.removed} removed"
        if self.action is IndexAction.REBUILT:
            return f"rebuilt ({self.reason})"
        return self.action.value


@dataclass(frozen=True)
class IndexInfo:
    """What `lbsearch status` shows about one modality's index, without loading it."""

    modality: Modality
    path: Path
    exists: bool
    bytes: int
    kind: str | None
    count: int | None
    up_to_date: bool
    bias: str = ""  # fingerprint of the reference bank its bias column comes from ("": none)


@dataclass(frozen=True)
class IndexCheck:
    """A full comparison of an index's ids with the catalog's."""

    modality: Modality
    catalog_count: int
    index_count: int
    missing: int
    extra: int
    duplicates: int

    @property
    def consistent(self) -> bool:
        return not (self.missing or self.extra or self.duplicates)
