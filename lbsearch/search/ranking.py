"""A query's candidates ranked as arrays; `Hit`s made only for the results shown.

Each modality's index answers its best segments; they roll up to files (the best segment of each
file wins, with its time span), the modalities merge (a file met in two keeps its best), the
files are ranked and cut off. Building a `Hit` and reading a full catalog row for every
candidate (about 240 at limit 20) took 10-20 ms a query at 100k segments on this project's
2 cores, far more than the ranking needs; here the candidates stay parallel arrays (segment id,
file id, path, modality, score, relevance) and only the `limit` shown become hits, from one
catalog read. The order is exactly the list-based one's: rank value descending, then path.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from ..types import Modality
from .examples import is_excluded
from .query import Hit

if TYPE_CHECKING:
    from ..catalog.records import SegmentHit
    from ..library import Library


@dataclass(frozen=True)
class Candidates:
    """Segments found, as parallel arrays: `scores` are FAISS's until `scored`, then raw
    cosines; `relevance` is NaN where the modality has no calibration."""

    segment_ids: np.ndarray  # int64
    file_ids: np.ndarray  # int64
    paths: np.ndarray  # object: str
    modalities: np.ndarray  # object: Modality
    scores: np.ndarray  # float64
    relevance: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.segment_ids)

    def take(self, index: np.ndarray) -> Candidates:
        return Candidates(*(getattr(self, f.name)[index] for f in fields(self)))

    def scored(self, raw: np.ndarray, relevance: np.ndarray | None) -> Candidates:
        nan = np.full(len(self), np.nan)
        return Candidates(
            self.segment_ids,
            self.file_ids,
            self.paths,
            self.modalities,
            np.asarray(raw, dtype=np.float64),
            nan if relevance is None else np.asarray(relevance, dtype=np.float64),
        )

    @classmethod
    def joined(cls, parts: list[Candidates]) -> Candidates:
        if not parts:
            return no_candidates()
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def no_candidates() -> Candidates:
    empty = np.zeros(0, dtype=np.float64)
    return Candidates(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, object),
        empty, empty,
    )  # fmt: skip


def best_segments(
    library: Library,
    modality: Modality,
    ids: np.ndarray,
    scores: np.ndarray,
    excluded: frozenset[str],
) -> Candidates:
    """Segments (best first, as FAISS answered) -> the best segment of each file, in that
    order; segments gone since the search and example files (`excluded`) left out."""
    files = library.segment_files(ids)
    at = np.searchsorted(files.ids, ids).clip(0, max(len(files.ids) - 1, 0))
    present = (files.ids[at] == ids) if len(files.ids) else np.zeros(len(ids), dtype=bool)
    ids, scores, at = ids[present], scores[present], at[present]
    _, first = np.unique(files.file_ids[at], return_index=True)
    best = np.sort(first)
    if excluded:
        paths = files.paths[at[best]].tolist()
        best = best[np.array([not is_excluded(p, excluded) for p in paths], dtype=bool)]
    at = at[best]
    return Candidates(
        ids[best].astype(np.int64),
        files.file_ids[at],
        files.paths[at],
        np.full(len(best), modality, dtype=object),
        np.asarray(scores[best], dtype=np.float64),
        np.full(len(best), np.nan),
    )


def ranks_by_score(order: str, found: Candidates) -> bool:
    """Rank by raw cosine when asked, or when a candidate has no relevance (a modality
    without a calibration): relevances and cosines are not on one scale."""
    return order == "score" or bool(np.isnan(found.relevance).any())


def rank_values(found: Candidates, by_score: bool) -> np.ndarray:
    return found.scores if by_score else found.relevance


def best_per_file(found: Candidates, order: str) -> Candidates:
    """Each file's best candidate over the modalities searched (a video's frames or sound);
    on a tie the first found."""
    values = rank_values(found, ranks_by_score(order, found))
    by_value = np.lexsort((np.arange(len(found)), -values))
    _, first = np.unique(found.file_ids[by_value], return_index=True)
    return found.take(np.sort(by_value[first]))


def ranked(found: Candidates, order: str) -> Candidates:
    """Best first: rank value descending, then path (one candidate per file)."""
    values = rank_values(found, ranks_by_score(order, found)).tolist()
    paths = found.paths.tolist()
    by_rank = sorted(range(len(found)), key=lambda i: (-values[i], paths[i]))
    return found.take(np.array(by_rank, dtype=np.int64))


def hits(library: Library, found: Candidates, weak: bool = False) -> list[Hit]:
    """The candidates as `Hit`s, in their order, from one catalog read (one gone since it
    was found is left out)."""
    rows = library.segments_by_ids(found.segment_ids)
    out = []
    for i, segment_id in enumerate(found.segment_ids.tolist()):
        row = rows.get(segment_id)
        if row is None:
            continue
        relevance = float(found.relevance[i])
        known = None if np.isnan(relevance) else relevance
        out.append(hit_of(row, float(found.scores[i]), known, weak))
    return out


def hit_of(
    row: SegmentHit, score: float, relevance: float | None = None, weak: bool = False
) -> Hit:
    """A catalog row (segment and file) as a `Hit` with its scores."""
    segment, file = row.segment, row.file
    return Hit(
        path=file.path,
        modality=segment.modality,
        score=float(score),
        start_s=segment.start_s,
        end_s=segment.end_s,
        segment_id=segment.id,
        duration_s=file.duration_s,
        size=file.size,
        mtime=file.mtime_ns / 1e9,
        offline=row.offline,
        relevance=relevance,
        weak=weak,
    )
