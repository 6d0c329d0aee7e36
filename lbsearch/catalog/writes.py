"""The catalog's writes: batches of files with their segments, deletions, models per modality.

Every method runs in one `BEGIN IMMEDIATE` transaction, so a crash never leaves half a batch, and
returns what changed per modality so the vector indices can follow.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, insert, select

from ..types import Modality
from .deltas import Deltas
from .engine import CatalogBase
from .records import (
    BatchResult,
    CatalogError,
    FailedFile,
    FileStatus,
    IndexedFile,
    ModalityChange,
    ModelChangedError,
    NewSegment,
)
from .rows import chunks, enc, load_states, update_modality
from .schema import files, modalities
from .shadow import delete_shadow_rows, insert_shadow_segments


class CatalogWrites(CatalogBase):
    """Write transactions of `Catalog`."""

    def write_batch(
        self, batch: Sequence[IndexedFile | FailedFile], shadow: Collection[Modality] = ()
    ) -> BatchResult:
        """Store a batch of files and their segments in ONE transaction.

        A file already in the catalog (same path) is replaced, its old segments deleted. Every
        segment's modality must be registered with set_modality and carry its model id.
        `shadow`: modalities being re-embedded (`--reembed`): their segments go beside the
        serving ones, and a file whose content is unchanged keeps its serving vectors of them.
        """
        for item in batch:
            _check_input(item)
        if not batch:
            return BatchResult()
        now = time.time()
        with self._write() as conn:
            deltas = Deltas(self.path, load_states(conn))
            same_content = _unchanged_content(conn, batch) if shadow else set()
            file_ids = [_upsert_file(conn, item, now) for item in batch]
            last = dict(zip(file_ids, batch, strict=True))
            for part in chunks(sorted(last)):
                keep = {i for i in part if last[i].path in same_content}
                deltas.remove(_delete_segments(conn, part, keep, shadow))
            rows: list[tuple[Any, ...]] = []
            next_id = _next_segment_id(conn)
            for file_id, item in last.items():  # a path given twice: its last entry wins
                if isinstance(item, IndexedFile):
                    serving = [s for s in item.segments if s.modality not in shadow]
                    next_id = _segment_rows(file_id, item.path, serving, next_id, deltas, rows)
                    insert_shadow_segments(conn, file_id, item.segments, shadow)
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

        Never deletes anything. A new preprocessing version of the same model becomes the
        modality's current one: new vectors are made with it, stored ones keep theirs (and keep
        serving) until `--reembed`. A different model is another vector space: ModelChangedError,
        and nothing changes (the caller refuses, or re-embeds beside it with begin_shadow).
        """
        now = time.time()
        with self._write() as conn:
            before = load_states(conn, counts=True).get(modality)
            if before is None:
                _insert_modality(conn, modality, model_id, preprocess_version, dim, now)
                return ModalityChange(modality, None, load_states(conn, counts=True)[modality])
            if before.model_id != model_id or (dim is not None and before.dim not in (None, dim)):
                raise ModelChangedError(modality, before.model_id, model_id, self.path)
            values: dict[str, Any] = {}
            if dim is not None and before.dim is None:
                values["dim"] = dim
            if before.preprocess_version != preprocess_version:
                values["preprocess_version"] = preprocess_version
            if values:
                update_modality(conn, modality, updated_at=now, **values)
            return ModalityChange(modality, before, load_states(conn, counts=True)[modality])


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
    "ctime_ns",
    "dev",
    "ino",
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
    "INSERT INTO segments (id, file_id, modality, start_s, end_s, model_id, vector, "
    "preprocess_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
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
    params = (*common, modality, *status, *extra, now, item.ctime_ns, item.dev, item.ino)
    return int(conn.exec_driver_sql(_UPSERT_FILE, params).scalar_one())


def _delete_segments(
    conn: Connection,
    file_ids: list[int],
    keep: Collection[int] = (),
    shadow: Collection[Modality] = (),
) -> list[tuple[int, str]]:
    """Delete the files' segments, except the serving `shadow`-modality ones of the files in
    `keep` (same content: their old vectors serve until the re-embed completes)."""
    marks = ",".join("?" * len(file_ids))
    names = tuple(m.value for m in shadow)
    spared = ""
    if keep and names:
        spared = (
            f" AND NOT (file_id IN ({','.join('?' * len(keep))}) "
            f"AND modality IN ({','.join('?' * len(names))}))"
        )
    params = (*file_ids, *keep, *names) if spared else tuple(file_ids)
    rows = conn.exec_driver_sql(
        f"DELETE FROM segments WHERE file_id IN ({marks}){spared} RETURNING id, modality", params
    )
    if names:
        delete_shadow_rows(conn, file_ids, names)
    return [(int(r[0]), str(r[1])) for r in rows]


def _unchanged_content(conn: Connection, batch: Sequence[IndexedFile | FailedFile]) -> set[str]:
    """Paths in `batch` whose catalogued row has the same content hash as the new one."""
    same = set()
    for item in batch:
        row = conn.execute(
            select(files.c.content_hash).where(files.c.path == enc(item.path))
        ).first()
        if row is not None and row[0] is not None and row[0] == item.content_hash:
            same.add(item.path)
    return same


def _next_segment_id(conn: Connection) -> int:
    seq = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'segments'").scalar()
    top = conn.exec_driver_sql("SELECT max(id) FROM segments").scalar()
    return max(int(seq or 0), int(top or 0)) + 1


def _segment_rows(
    file_id: int,
    path: str,
    new: Sequence[NewSegment],
    next_id: int,
    deltas: Deltas,
    rows: list[tuple[Any, ...]],
) -> int:
    for seg in new:
        vector = deltas.add(path, seg, next_id)
        blob = vector.astype("<f4").tobytes()
        start, end = float(seg.start_s), float(seg.end_s)
        version = seg.preprocess_version or deltas.states[seg.modality].preprocess_version
        modality = seg.modality.value
        rows.append((next_id, file_id, modality, start, end, seg.model_id, blob, version))
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
