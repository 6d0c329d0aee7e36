"""The catalog's index runs and its summary for `lbsearch status`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from ..types import Modality
from .folders import CatalogFolders
from .records import (
    CatalogStats,
    FileStatus,
    ModalityState,
    ModalityStats,
    RootStats,
    RunCounts,
    RunRecord,
)
from .rows import FILE_COLUMNS, file_record, load_states
from .schema import files, runs, segments


class CatalogRuns(CatalogFolders):
    """Index runs and statistics of `Catalog`."""

    def start_run(self, roots: Sequence[str], encodings: dict[str, str] | None = None) -> int:
        """Record the start of an index run and the encoding (back-end/dtype) of each modality
        it embeds with; earlier runs left open were interrupted."""
        with self._write() as conn:
            conn.execute(
                update(runs).where(runs.c.status == "running").values(status="interrupted")
            )
            values = {
                "started_at": time.time(),
                "roots": json.dumps(list(roots)),
                "counts": "{}",
                "encodings": json.dumps(encodings or {}, sort_keys=True),
            }
            stmt = insert(runs).values(status="running", **values).returning(runs.c.id)
            return int(conn.execute(stmt).scalar_one())

    def finish_run(
        self,
        run_id: int,
        counts: RunCounts,
        status: str = "finished",
        encodings: dict[str, str] | None = None,
    ) -> None:
        """Close a run as `finished`, `offline` or `interrupted` (a killed run stays `running`);
        `encodings`: what the towers that ran resolved to (replaces what was expected)."""
        values = {"finished_at": time.time(), "status": status, "counts": _counts_json(counts)}
        if encodings is not None:
            values["encodings"] = json.dumps(encodings, sort_keys=True)
        with self._write() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def last_run(self) -> RunRecord | None:
        with self._read() as conn:
            return _last_run(conn)

    def stats(self, failed_limit: int = 100) -> CatalogStats:
        """Counts per modality and status, failures, roots and the last run, in one snapshot."""
        with self._read() as conn:
            states = load_states(conn, counts=True)
            by_status = conn.execute(
                select(files.c.modality, files.c.status, func.count()).group_by(
                    files.c.modality, files.c.status
                )
            ).all()
            seg_stmt = select(segments.c.modality, func.count()).group_by(segments.c.modality)
            seg_counts: dict[str, int] = {str(m): int(n) for m, n in conn.execute(seg_stmt).all()}
            failed = conn.execute(
                select(*FILE_COLUMNS)
                .where(files.c.status == FileStatus.FAILED.value)
                .order_by(files.c.indexed_at.desc(), files.c.id)
                .limit(failed_limit)
            ).all()
            return CatalogStats(
                library_id=self.library_id,
                schema_version=self.schema_version,
                files=sum(int(r[2]) for r in by_status),
                segments=sum(int(v) for v in seg_counts.values()),
                modalities=_modality_stats(by_status, seg_counts, states),
                failures_by_reason=_failure_counts(conn),
                failed_files=tuple(file_record(r) for r in failed),
                roots=_root_stats(conn),
                last_run=_last_run(conn),
                catalog_bytes=self.size_on_disk(),
                offline=self.offline_folders(),
            )

    def size_on_disk(self) -> int:
        """Bytes of the database with its write-ahead log and shared-memory files."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with suppress(OSError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total


def _modality_stats(
    by_status: Sequence[Any], seg_counts: dict[str, int], states: dict[Modality, ModalityState]
) -> tuple[ModalityStats, ...]:
    out = []
    for modality in Modality:
        counts = {
            FileStatus(status): int(n) for name, status, n in by_status if name == modality.value
        }
        segs = int(seg_counts.get(modality.value, 0))
        if counts or segs or modality in states:
            out.append(ModalityStats(modality, counts, segs, states.get(modality)))
    return tuple(out)


def _failure_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        select(files.c.reason, func.count())
        .where(files.c.status == FileStatus.FAILED.value)
        .group_by(files.c.reason)
        .order_by(func.count().desc())
    ).all()
    return {str(reason): int(n) for reason, n in rows}


def _root_stats(conn: Connection) -> tuple[RootStats, ...]:
    rows = conn.execute(
        select(files.c.root, func.count(), func.max(files.c.indexed_at))
        .group_by(files.c.root)
        .order_by(files.c.root)
    ).all()
    return tuple(RootStats(os.fsdecode(root), int(n), float(t)) for root, n, t in rows)


def _counts_json(counts: RunCounts) -> str:
    return json.dumps(counts.__dict__)


def _last_run(conn: Connection) -> RunRecord | None:
    row = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    known = {k: v for k, v in json.loads(row.counts).items() if k in RunCounts.__dataclass_fields__}
    return RunRecord(
        id=row.id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        roots=tuple(json.loads(row.roots)),
        status=row.status,
        counts=RunCounts(**known),
        encodings=dict(json.loads(row.encodings or "{}")),
    )
