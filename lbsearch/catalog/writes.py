"""The catalog's writes: batches of files with their segments, deletions, models per modality.

Every method runs in one `BEGIN IMMEDIATE` transaction, so a crash never leaves half a batch, and
returns what changed per modality so the vector indices can follow.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, insert, or_, select, update

from ..types import Modality
from .deltas import Deltas
from .engine import CatalogBase
from .records import (
    BatchResult,
    CatalogError,
    DeltaKind,
    FailedFile,
    FileStatus,
    IndexedFile,
    ModalityChange,
    ModalityDelta,
    ModalityState,
)
from .rows import chunks, enc, load_states, update_modality
from .schema import files, modalities, segments


class CatalogWrites(CatalogBase):
    """Write transactions of `Catalog`."""

    def write_batch(self, batch: Sequence[IndexedFile | FailedFile]) -> BatchResult:
        """Store a batch of files and their segments in ONE transaction.

        A file already in the catalog (same path) is replaced, its old segments deleted. Every
        segment's modality must be registered with set_modality and carry its model id.
        """
        for item in batch:
            _check_input(item)
        if not batch:
            return BatchResult()
        now = time.time()
        with self._write() as conn:
            deltas = Deltas(self.path, load_states(conn))
            file_ids = [_upsert_file(conn, item, now) for item in batch]
            for part in chunks(sorted(set(file_ids))):
                deltas.remove(_delete_segments(conn, part))
            last = dict(zip(file_ids, batch, strict=True))
            rows: list[tuple[Any, ...]] = []
            next_id = _next_segment_id(conn)
            for file_id, item in last.items():  # a path given twice: its last entry wins
                if isinstance(item, IndexedFile):
                    next_id = _segment_rows(file_id, item, next_id, deltas, rows)
            if rows:
                conn.exec_driver_sql(_INSERT_SEGMENT, rows)
            return BatchResult(tuple(file_ids), deltas.commit(conn, now))

    def record_failure(self, failed: FailedFile) -> BatchResult:
        """Record one file that could not be embedded (any earlier segments of it are dropped)."""
        return self.write_batch([failed])

    def delete_files(self, file_ids: Sequence[int]) -> BatchResult:
        """Forget files (deleted from disk, swept): their segments go with them."""
        if not file_ids:
            return BatchResult()
        now = time.time()
        with self._write() as conn:
            deltas = Deltas(self.path, load_states(conn))
            for part in chunks(list(file_ids)):
                deltas.remove(_delete_segments(conn, part))
                conn.execute(delete(files).where(files.c.id.in_(part)))
            return BatchResult(tuple(file_ids), deltas.commit(conn, now))

    def set_modality(
        self, modality: Modality, model_id: str, preprocess_version: str, dim: int | None = None
    ) -> ModalityChange:
        """Register the model (and preprocessing version) a modality is embedded with.

        If either differs from what the catalog holds, every segment of the modality is deleted
        and the files that had them become `stale` (to be embedded again); other modalities of
        those files are kept.
        """
        now = time.time()
        with self._write() as conn:
            before = load_states(conn, counts=True).get(modality)
            if before is None:
                _insert_modality(conn, modality, model_id, preprocess_version, dim, now)
                return ModalityChange(modality, None, load_states(conn, counts=True)[modality])
            same = (before.model_id, before.preprocess_version) == (model_id, preprocess_version)
            if same and (dim is None or before.dim in (None, dim)):
                if dim is not None and before.dim is None:
                    update_modality(conn, modality, dim=dim, updated_at=now)
                return ModalityChange(modality, before, load_states(conn, counts=True)[modality])
            return _wipe_modality(conn, before, model_id, preprocess_version, dim, now)


def _check_input(item: IndexedFile | FailedFile) -> None:
    for name in ("path", "root"):
        value = getattr(item, name)
        if not Path(value).is_absolute():
            raise CatalogError(
                f"{value}: catalog {name}s must be absolute", "resolve paths before storing them"
            )
    if isinstance(item, IndexedFile):
        for seg in item.segments:
            vec = np.asarray(seg.vector)
            if vec.ndim != 1 or not np.all(np.isfinite(vec)):
                raise CatalogError(
                    f"{item.path}: segment {seg.start_s:g}-{seg.end_s:g} s has a vector that is "
                    "not a finite 1-D array",
                    "the encoder produced NaN/inf or a batch; this is a bug in the caller",
                )


_FILE_FIELDS = (
    "path",
    "root",
    "size",
    "mtime_ns",
    "content_hash",
    "modality",
    "status",
    "reason",
    "detail",
    "duration_s",
    "width",
    "height",
    "model_id",
    "indexed_at",
)
# Hot path (once per file per batch): plain SQL, not SQLAlchemy statements, which cost ~3 ms each
# to build and compile here against ~0.05 ms to run.
_UPSERT_FILE = (
    f"INSERT INTO files ({', '.join(_FILE_FIELDS)}) VALUES ({', '.join('?' * len(_FILE_FIELDS))}) "
    "ON CONFLICT (path) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in _FILE_FIELDS[1:])
    + " RETURNING id"
)
_INSERT_SEGMENT = (
    "INSERT INTO segments (id, file_id, modality, start_s, end_s, model_id, vector) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _upsert_file(conn: Connection, item: IndexedFile | FailedFile, now: float) -> int:
    common = (enc(item.path), enc(item.root), item.size, item.mtime_ns, item.content_hash)
    modality = item.modality.value if item.modality else None
    if isinstance(item, IndexedFile):
        status: tuple[Any, ...] = (FileStatus.INDEXED.value, None, None)
        extra: tuple[Any, ...] = (item.duration_s, item.width, item.height, item.model_id)
    else:
        status = (FileStatus.FAILED.value, item.reason, item.detail)
        extra = (None, None, None, None)
    params = (*common, modality, *status, *extra, now)
    return int(conn.exec_driver_sql(_UPSERT_FILE, params).scalar_one())


def _delete_segments(conn: Connection, file_ids: list[int]) -> list[tuple[int, str]]:
    marks = ",".join("?" * len(file_ids))
    rows = conn.exec_driver_sql(
        f"DELETE FROM segments WHERE file_id IN ({marks}) RETURNING id, modality", tuple(file_ids)
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def _next_segment_id(conn: Connection) -> int:
    seq = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'segments'").scalar()
    top = conn.exec_driver_sql("SELECT max(id) FROM segments").scalar()
    return max(int(seq or 0), int(top or 0)) + 1


def _segment_rows(
    file_id: int, item: IndexedFile, next_id: int, deltas: Deltas, rows: list[tuple[Any, ...]]
) -> int:
    for seg in item.segments:
        vector = deltas.add(item.path, seg, next_id)
        blob = vector.astype("<f4").tobytes()
        start, end = float(seg.start_s), float(seg.end_s)
        rows.append((next_id, file_id, seg.modality.value, start, end, seg.model_id, blob))
        next_id += 1
    return next_id


def _insert_modality(
    conn: Connection, modality: Modality, model_id: str, version: str, dim: int | None, now: float
) -> None:
    conn.execute(
        insert(modalities).values(
            modality=modality.value,
            model_id=model_id,
            preprocess_version=version,
            dim=dim,
            generation=0,
            updated_at=now,
        )
    )


def _wipe_modality(
    conn: Connection,
    before: ModalityState,
    model_id: str,
    version: str,
    dim: int | None,
    now: float,
) -> ModalityChange:
    modality = before.modality
    had = select(segments.c.file_id).where(segments.c.modality == modality.value)
    stale = conn.execute(
        update(files)
        .where(
            files.c.status == FileStatus.INDEXED.value,
            or_(files.c.id.in_(had), files.c.modality == modality.value),
        )
        .values(status=FileStatus.STALE.value)
    ).rowcount
    removed = conn.execute(
        delete(segments).where(segments.c.modality == modality.value).returning(segments.c.id)
    ).scalars()
    removed_ids = np.fromiter(removed, dtype=np.int64)
    generation = before.generation + 1
    values = {"model_id": model_id, "preprocess_version": version, "dim": dim}
    update_modality(conn, modality, generation=generation, updated_at=now, **values)
    delta = ModalityDelta(
        modality=modality,
        generation_before=before.generation,
        generation=generation,
        added_ids=np.zeros(0, dtype=np.int64),
        added_vectors=np.zeros((0, dim or 0), dtype=np.float32),
        removed_ids=removed_ids,
        kind=DeltaKind.MODEL,
        dim=dim,
    )
    current = load_states(conn, counts=True)[modality]
    return ModalityChange(modality, before, current, len(removed_ids), int(stale or 0), delta)
