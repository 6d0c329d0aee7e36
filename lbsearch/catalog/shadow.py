"""Re-embedding beside the serving vectors (`lbsearch index --reembed`).

While a modality is re-embedded with another model (or a newer preprocessing version), its new
vectors go to `shadow_segments` and the files that cannot be embedded any more to
`shadow_failures`; searches keep using `segments`, so every file stays findable. Once every file
with old vectors has a shadow (`shadow_todo` is 0), `switch_to_shadow` replaces the old vectors by
the new ones in one transaction. A run killed at any point leaves the old vectors serving, and the
next `--reembed` resumes: what is already in the shadow is not embedded again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

from ..types import Modality
from .engine import CatalogBase
from .records import (
    CatalogError,
    DeltaKind,
    FileStatus,
    ModalityChange,
    ModalityDelta,
    ModalityState,
    NewSegment,
    ShadowModel,
    StoredSegment,
)
from .rows import chunks, enc, load_states, update_modality

# Files with serving vectors of the modality made otherwise than with the shadow's model and
# version, and neither a shadow vector nor a shadow failure yet: what the re-embed still owes.
_TODO = """
    SELECT DISTINCT s.file_id FROM segments s
    WHERE s.modality = :m
      AND NOT (s.model_id = :model AND s.preprocess_version IS :version)
      AND NOT EXISTS (SELECT 1 FROM shadow_segments h WHERE h.file_id = s.file_id AND h.modality = :m)
      AND NOT EXISTS (SELECT 1 FROM shadow_failures f WHERE f.file_id = s.file_id AND f.modality = :m)
"""


def insert_shadow_segments(
    conn: Connection, file_id: int, new: Sequence[NewSegment], shadow: Collection[Modality]
) -> None:
    rows = [
        (file_id, s.modality.value, float(s.start_s), float(s.end_s), _blob(s.vector))
        for s in new
        if s.modality in shadow
    ]
    if rows:
        conn.exec_driver_sql(
            "INSERT INTO shadow_segments (file_id, modality, start_s, end_s, vector) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def delete_shadow_rows(conn: Connection, file_ids: Sequence[int], names: Sequence[str]) -> None:
    ids = ",".join("?" * len(file_ids))
    kinds = ",".join("?" * len(names))
    for table in ("shadow_segments", "shadow_failures"):
        conn.exec_driver_sql(
            f"DELETE FROM {table} WHERE file_id IN ({ids}) AND modality IN ({kinds})",
            (*file_ids, *names),
        )


class CatalogShadow(CatalogBase):
    """The `--reembed` side of `Catalog`."""

    def begin_shadow(self, modality: Modality, target: ShadowModel) -> bool:
        """Make `target` the modality's shadow model; a shadow of another model or version is
        dropped (nothing serves from it). Returns True when an earlier shadow is resumed."""
        with self._write() as conn:
            state = load_states(conn).get(modality)
            if state is None:
                raise CatalogError(f"{self.path}: {modality} is not registered", "a bug")
            if state.shadow is not None and _same_target(state.shadow, target):
                return True
            for table in ("shadow_segments", "shadow_failures"):
                conn.exec_driver_sql(f"DELETE FROM {table} WHERE modality = ?", (modality.value,))
            update_modality(
                conn,
                modality,
                shadow_model_id=target.model_id,
                shadow_preprocess_version=target.preprocess_version,
                shadow_dim=target.dim,
            )
            return False

    def shadow_segments_for_hash(
        self, content_hash: str, modality: Modality
    ) -> tuple[StoredSegment, ...] | None:
        """Shadow vectors of a file with this content (a re-embed resumed, or a duplicate)."""
        with self._read() as conn:
            file_id = conn.exec_driver_sql(
                "SELECT f.id FROM files f WHERE f.content_hash = ? AND EXISTS (SELECT 1 FROM "
                "shadow_segments h WHERE h.file_id = f.id AND h.modality = ?) ORDER BY f.id LIMIT 1",
                (content_hash, modality.value),
            ).scalar()
            if file_id is None:
                return None
            rows = conn.exec_driver_sql(
                "SELECT start_s, end_s, vector FROM shadow_segments WHERE file_id = ? AND "
                "modality = ? ORDER BY start_s, id",
                (file_id, modality.value),
            ).all()
        return tuple(StoredSegment(r[0], r[1], _vector(r[2])) for r in rows)

    def record_shadow_failure(
        self, path: str, modality: Modality, reason: str, detail: str
    ) -> None:
        """The new model could not embed a file that has old vectors: it keeps them until the
        switch, and is failed after it."""
        with self._write() as conn:
            conn.exec_driver_sql(
                "INSERT OR REPLACE INTO shadow_failures (file_id, modality, reason, detail) "
                "SELECT id, ?, ?, ? FROM files WHERE path = ?",
                (modality.value, reason, detail, enc(path)),
            )

    def shadow_todo(self, modality: Modality) -> list[int]:
        """Ids of the files whose old vectors of `modality` have no replacement yet."""
        with self._read() as conn:
            state = load_states(conn).get(modality)
            if state is None or state.shadow is None:
                return []
            return _todo(conn, modality, state.shadow)

    def shadow_todo_paths(self, modality: Modality) -> list[str]:
        """The paths of `shadow_todo`'s files."""
        with self._read() as conn:
            state = load_states(conn).get(modality)
            if state is None or state.shadow is None:
                return []
            params = {
                "m": modality.value,
                "model": state.shadow.model_id,
                "version": state.shadow.preprocess_version,
            }
            rows = conn.exec_driver_sql(
                f"SELECT path FROM files WHERE id IN ({_TODO})", params
            ).scalars()
            return [os.fsdecode(r) for r in rows]

    def outdated_files(self, modality: Modality) -> int:
        """Files with vectors of `modality` made with another preprocessing version than the
        modality's current one (what `--reembed` would refresh)."""
        with self._read() as conn:
            state = load_states(conn).get(modality)
            if state is None:
                return 0
            return int(
                conn.exec_driver_sql(
                    "SELECT count(DISTINCT file_id) FROM segments WHERE modality = ? AND "
                    "(preprocess_version IS NOT ? OR model_id != ?)",
                    (modality.value, state.preprocess_version, state.model_id),
                ).scalar()
                or 0
            )

    def switch_to_shadow(self, modality: Modality) -> ModalityChange:
        """Replace the modality's old vectors by the shadow's, in one transaction."""
        now = time.time()
        with self._write() as conn:
            before = load_states(conn, counts=True).get(modality)
            if before is None or before.shadow is None:
                raise CatalogError(f"{self.path}: no re-embed of {modality} to finish", "a bug")
            target = before.shadow
            if _todo(conn, modality, target):
                raise CatalogError(
                    f"{self.path}: the re-embed of {modality} is not complete",
                    "run `lbsearch index --reembed` again to finish it",
                )
            return _switch(conn, before.modality, before, target, now)


def _switch(
    conn: Connection, modality: Modality, before: ModalityState, target: ShadowModel, now: float
) -> ModalityChange:
    m = modality.value
    old = {"m": m, "model": target.model_id, "version": target.preprocess_version}
    blob = conn.exec_driver_sql(
        "SELECT vector FROM shadow_segments WHERE modality = ? LIMIT 1", (m,)
    ).scalar()
    dim = len(blob) // 4 if blob is not None else (target.dim or before.dim)
    replaced = np.fromiter(
        conn.exec_driver_sql(
            "DELETE FROM segments WHERE modality = :m AND NOT (model_id = :model AND "
            "preprocess_version IS :version) RETURNING id",
            old,
        ).scalars(),
        dtype=np.int64,
    )
    conn.exec_driver_sql(
        "INSERT INTO segments (file_id, modality, start_s, end_s, model_id, vector, "
        "preprocess_version) SELECT file_id, modality, start_s, end_s, ?, vector, ? "
        "FROM shadow_segments WHERE modality = ? ORDER BY file_id, start_s, id",
        (target.model_id, target.preprocess_version, m),
    )
    failed = _fail_files_left_without_vectors(conn, m)
    for table in ("shadow_segments", "shadow_failures"):
        conn.exec_driver_sql(f"DELETE FROM {table} WHERE modality = ?", (m,))
    generation = before.generation + 1
    update_modality(
        conn,
        modality,
        model_id=target.model_id,
        preprocess_version=target.preprocess_version,
        dim=dim,
        generation=generation,
        shadow_model_id=None,
        shadow_preprocess_version=None,
        shadow_dim=None,
        updated_at=now,
    )
    delta = ModalityDelta(
        modality=modality,
        generation_before=before.generation,
        generation=generation,
        added_ids=np.zeros(0, dtype=np.int64),
        added_vectors=np.zeros((0, dim or 0), dtype=np.float32),
        removed_ids=replaced,
        kind=DeltaKind.MODEL,
        dim=dim,
    )
    current = load_states(conn, counts=True)[modality]
    return ModalityChange(modality, before, current, len(replaced), failed, delta)


def _fail_files_left_without_vectors(conn: Connection, m: str) -> int:
    """Files the new model could not embed and that have no vectors left: failed, with the
    reason the new model gave."""
    rows = conn.exec_driver_sql(
        "SELECT f.file_id, f.reason, f.detail FROM shadow_failures f WHERE f.modality = ? AND "
        "NOT EXISTS (SELECT 1 FROM segments s WHERE s.file_id = f.file_id)",
        (m,),
    ).all()
    for part in chunks(list(rows)):
        for file_id, reason, detail in part:
            conn.exec_driver_sql(
                "UPDATE files SET status = ?, reason = ?, detail = ? WHERE id = ?",
                (FileStatus.FAILED.value, reason, detail, file_id),
            )
    return len(rows)


def _todo(conn: Connection, modality: Modality, target: ShadowModel) -> list[int]:
    params = {"m": modality.value, "model": target.model_id, "version": target.preprocess_version}
    return [int(r[0]) for r in conn.exec_driver_sql(_TODO, params)]


def _same_target(a: ShadowModel, b: ShadowModel) -> bool:
    return (a.model_id, a.preprocess_version) == (b.model_id, b.preprocess_version)


def _blob(vector: Any) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32, copy=True)
