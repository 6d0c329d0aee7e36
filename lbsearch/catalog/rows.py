"""Row helpers shared by the catalog's reads and writes: paths, id chunks, records, modalities."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, func, select, update

from ..types import Modality
from .records import FileRecord, FileStatus, ModalityState, ShadowModel
from .schema import files, modalities, segments

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
    """Registered modalities; segment counts only when asked (a count scans the id index)."""
    numbers: dict[str, int] = {}
    if counts:
        stmt = select(segments.c.modality, func.count()).group_by(segments.c.modality)
        numbers = {str(m): int(n) for m, n in conn.execute(stmt).all()}
    return {
        Modality(r.modality): ModalityState(
            modality=Modality(r.modality),
            model_id=r.model_id,
            preprocess_version=r.preprocess_version,
            dim=r.dim,
            generation=r.generation,
            segment_count=numbers.get(r.modality, 0),
            updated_at=r.updated_at,
            shadow=ShadowModel(r.shadow_model_id, r.shadow_preprocess_version, r.shadow_dim)
            if r.shadow_model_id is not None
            else None,
        )
        for r in conn.execute(select(modalities))
    }


def update_modality(conn: Connection, modality: Modality, **values: Any) -> None:
    values.setdefault("updated_at", time.time())
    conn.execute(update(modalities).where(modalities.c.modality == modality.value).values(**values))
