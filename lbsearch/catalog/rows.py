"""Row helpers shared by the catalog's reads and writes: paths, id chunks, records, modalities."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import Connection, update

from ..types import Modality
from .records import FileRecord, FileStatus, ModalityState
from .schema import files, modalities
from .shape import chunks, enc, read_states

__all__ = ["FILE_COLUMNS", "chunks", "enc", "file_record", "load_states", "update_modality"]

FILE_COLUMNS = tuple(files.c)


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
    """`shape.read_states` inside a SQLAlchemy transaction, on its driver connection."""
    driver: Any = conn.connection.driver_connection
    return read_states(driver, counts)


def update_modality(conn: Connection, modality: Modality, **values: Any) -> None:
    values.setdefault("updated_at", time.time())
    conn.execute(update(modalities).where(modalities.c.modality == modality.value).values(**values))
