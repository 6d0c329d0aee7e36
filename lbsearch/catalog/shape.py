"""The catalog's shape as plain SQL reads it, without SQLAlchemy: the schema version, the columns
a search reads by position, and the modalities' states.

A cold `lbsearch query` reads the catalog through these alone (`searching.SearchCatalog`):
importing SQLAlchemy took a quarter of a second of its ~1 s on a 2-core machine. `schema` checks
at import that its tables agree with what is written here.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..types import Modality
from .records import CatalogError, FileRecord, ModalityState, ShadowModel

SCHEMA_VERSION = 3  # the last migration's; `schema` asserts it
CHUNK = 500  # ids per IN (...) list

# Covering indices for a search's look-ups (`lookups`). A segment's row holds its vector (3 KB
# at 768-d), a page of its own, so reading a candidate's file or a window's span from the table
# costs a page per segment, few of them in SQLite's cache: a warm search at 100k segments spent
# 1.6-2.0 ms on its candidates' files and 1.5-2.1 ms on the found files' windows, and 0.8 and
# 0.35 ms through these (~45 bytes an entry: 4.5 MB at 100k segments). They are not a migration:
# older versions ignore them, a writer adds them where they are missing (`Library.open(write=
# True)`), and a catalog without them (read-only, or not yet opened by a writer) is searched
# through the table as before.
ID_COVER = "segments_id_cover"
SEARCH_INDEXES = {
    ID_COVER: "segments (id, file_id, modality, start_s, end_s)",
    "segments_file_cover": "segments (file_id, modality, start_s, end_s)",
}


def has_index(conn: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
    return conn.execute(query, (name,)).fetchone() is not None


# a segment row without its vector, then its file's whole row (the columns in FileRecord's order)
SEGMENT_COLUMNS = (
    "id",
    "file_id",
    "modality",
    "start_s",
    "end_s",
    "model_id",
    "preprocess_version",
)
FILE_COLUMNS = tuple(f.name for f in dataclasses.fields(FileRecord))

MODALITIES = {m.value: m for m in Modality}

_STATES = (
    "SELECT modality, model_id, preprocess_version, dim, generation, updated_at, "
    "shadow_model_id, shadow_preprocess_version, shadow_dim FROM modalities"
)


def enc(path: str) -> bytes:
    return os.fsencode(path)


def chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_states(driver: sqlite3.Connection, counts: bool = False) -> dict[Modality, ModalityState]:
    """Registered modalities; segment counts only when asked (a count scans the id index).
    Plain SQL: every search reads these (0.4 ms a search through SQLAlchemy's statement and
    row machinery at 100k segments, measured)."""
    numbers: dict[str, int] = {}
    if counts:
        found = driver.execute("SELECT modality, count(*) FROM segments GROUP BY modality")
        numbers = {str(m): int(n) for m, n in found}
    return {
        Modality(m): ModalityState(
            modality=Modality(m),
            model_id=model_id,
            preprocess_version=preprocess_version,
            dim=dim,
            generation=generation,
            segment_count=numbers.get(m, 0),
            updated_at=updated_at,
            shadow=ShadowModel(shadow_id, shadow_version, shadow_dim)
            if shadow_id is not None
            else None,
        )
        for (
            m, model_id, preprocess_version, dim, generation, updated_at,
            shadow_id, shadow_version, shadow_dim,
        ) in driver.execute(_STATES)
    }  # fmt: skip


def translate_error(path: Path, text: str, busy_timeout_s: float) -> CatalogError:
    """An SQLite error as a `CatalogError` that says what to do."""
    if "locked" in text or "busy" in text:
        return CatalogError(
            f"{path}: the catalog stayed locked by another process for {busy_timeout_s:g} s",
            "another lbsearch process is writing; retry, or raise [library] busy_timeout_s",
        )
    if "not a database" in text or "malformed" in text:
        return CatalogError(
            f"{path}: the catalog file is damaged ({text})",
            "move catalog.sqlite away and run `lbsearch index` again to rebuild the library",
        )
    if "full" in text:
        return CatalogError(f"{path}: disk full while writing the catalog", "free some space")
    if "readonly" in text or "unable to open" in text:
        return CatalogError(
            f"{path}: cannot open or write the catalog ({text})",
            "check the library folder's permissions and that the disk is mounted",
        )
    return CatalogError(f"{path}: catalog error: {text}", "retry; if it persists, report it")
