"""The status document: what `lbsearch status --json` prints and /api/status answers, built in
one place so every front end shows the same fields."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..catalog import RunRecord
    from ..config import RelevanceConfig
    from ..library import LibraryStats

FAILED_SHOWN = 100  # failed files listed unless asked for all
ALL = 1 << 62  # "no limit" for the catalog's failed-file query


def failed_total(stats: LibraryStats) -> int:
    return sum(stats.catalog.failures_by_reason.values())


def status_json(stats: LibraryStats, relevance: RelevanceConfig | None = None) -> dict[str, Any]:
    from ..config import RelevanceConfig
    from .calibration import calibration_status

    catalog = stats.catalog
    run = catalog.last_run
    infos = {info.modality: info for info in stats.indices}
    modalities = []
    for m in catalog.modalities:
        info = infos.get(m.modality)
        files = {status.value: n for status, n in m.files.items()}
        modalities.append(
            {
                "modality": m.modality.value,
                "files": files,
                "segments": m.segments,
                "model": m.state.model_id if m.state else None,
                "encoding": run.encodings.get(m.modality.value) if run else None,
                "index": {"kind": info.kind, "up_to_date": info.up_to_date} if info else None,
                "calibration": calibration_status(
                    info.bias if info else "",
                    m.state.model_id if m.state else None,
                    m.segments,
                    relevance or RelevanceConfig(),
                ),
            }
        )
    return {
        "library": str(stats.root),
        "files": catalog.files,
        "segments": catalog.segments,
        "bytes": {"catalog": stats.catalog_bytes, "vectors": stats.vectors_bytes},
        "modalities": modalities,
        "roots": [
            {"root": r.root, "files": r.files, "last_indexed_at": _iso(r.last_indexed_at)}
            for r in catalog.roots
        ],
        "offline": [
            {
                "folder": f.folder,
                "root": f.root,
                "reason": f.reason,
                "since": _iso(f.since),
                "files": f.files,
            }
            for f in catalog.offline
        ],
        "last_run": _run_json(run) if run else None,
        "failures_by_reason": catalog.failures_by_reason,
        "failed_total": failed_total(stats),
        "failed_files": [
            {"path": f.path, "reason": f.reason, "detail": f.detail} for f in catalog.failed_files
        ],
    }


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at) if run.finished_at else None,
        "roots": list(run.roots),
        "counts": dict(run.counts.__dict__),
        "encodings": dict(run.encodings),
    }


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")
