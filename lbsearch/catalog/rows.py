"""Row helpers shared by the catalog's reads and writes: paths, id chunks, records, modalities."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, update

from ..types import Modality
from .records import FileRecord, FileStatus, ModalityState, ShadowModel
from .schema import files, modalities

CHUNK = 500  # ids per IN (...) list
FILE_COLUMNS = tuple(files.c)


def enc(path: str) -> bytes:
    return os.fsencode(path)


def chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def file_record(row: Any) -> FileRecord:
    return FileRecord(
        id=row.id,
        path=os.fsdecode(row.path),
        root=os.fsdecode(row.root),
        size=row.size,
        mtime_ns=row.mtime_ns,
        content_hash=row.content_hash,
        modality=Modality(row.modality) if row.modality else None,
        status=FileStatus(row.status),
        reason=row.reason,
        detail=row.detail,
        duration_s=row.duration_s,
        width=row.width,
        height=row.height,
        model_id=row.model_id,
        indexed_at=row.indexed_at,
        ctime_ns=row.ctime_ns,
        dev=row.dev,
        ino=row.ino,
    )


def load_states(conn: Connection, counts: bool = False) -> dict[Modality, ModalityState]:
    """Registered modalities; segment counts only when asked (a count scans the id index).
    Plain SQL on the transaction's driver connection: every search reads these (0.4 ms a
    search through SQLAlchemy's statement and row machinery at 100k segments, measured)."""
    driver: Any = conn.connection.driver_connection
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


_STATES = (
    "SELECT modality, model_id, preprocess_version, dim, generation, updated_at, "
    "shadow_model_id, shadow_preprocess_version, shadow_dim FROM modalities"
)


def update_modality(conn: Connection, modality: Modality, **values: Any) -> None:
    values.setdefault("updated_at", time.time())
    conn.execute(update(modalities).where(modalities.c.modality == modality.value).values(**values))
