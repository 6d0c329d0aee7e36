"""A file's picture and sound windows scored against the query, for fused windows and moments.

A video is indexed as picture windows (the video index) plus a sound-track window for each of
them (the audio index, same start and end); an audio file as sound windows. For the files a
search found, every window of theirs is read from the catalog at once, each stream's scored
exactly from the index rows (the rows and biases its hits are scored with, so a window's raw
cosine and relevance are those its hit has), then joined per file by span
(moments.windows_from_streams) and turned into moments.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..types import Modality
from ..vectors.kinds import BiasKind
from .calibration import calibration
from .moments import (
    RAW_SCALE,
    RELEVANCE_SCALE,
    TIMED,
    Match,
    Moment,
    Windows,
    find_moments,
    fused_values,
    soft_min,
    windows_from_streams,
)
from .query import Hit, Query
from .relevance import Calibration
from .scoring import own_null, rank_key, ranks_by_score

if TYPE_CHECKING:
    from ..catalog.lookups import SegmentWindows
    from ..library import Library

Row = tuple[float, float, float, float | None]  # start_s, end_s, raw cosine, relevance


@dataclass(frozen=True)
class Scorer:
    """What scoring a stream's windows needs: the query vector per modality and the alphas."""

    library: Library
    query_vectors: dict[Modality, np.ndarray]
    searched_alpha: float
    alpha: float
    has_text: bool

    @property
    def bias(self) -> BiasKind:
        """The bias column this query's searches subtract (its own: engines serve queries of
        both kinds at once)."""
        return BiasKind.of_query(self.has_text)


def file_windows(scorer: Scorer, hits: list[Hit]) -> dict[str, Windows]:
    """Every window of the hits' files (videos and audio files), per path, scored: one catalog
    read for the windows of both streams, one scoring of each stream's windows."""
    streams: dict[str, dict[Modality, list[Row]]] = defaultdict(lambda: {m: [] for m in TIMED})
    paths = list(dict.fromkeys(h.path for h in hits))
    segments = scorer.library.segment_windows(paths) if paths else None
    for modality in TIMED:
        if modality in scorer.query_vectors and segments is not None:
            for path, row in _stream_rows(scorer, modality, segments.of(modality)):
                streams[path][modality].append(row)
    return {
        path: windows_from_streams(rows[Modality.VIDEO], rows[Modality.AUDIO])
        for path, rows in streams.items()
    }


def _stream_rows(
    scorer: Scorer, modality: Modality, windows: SegmentWindows
) -> list[tuple[str, Row]]:
    """(path, window row) for every window of `modality` among `windows` that the index
    holds, scored by the index (the hits' own scores and biases)."""
    if not len(windows.ids):
        return []
    result = scorer.library.search(
        modality,
        scorer.query_vectors[modality][None, :],
        len(windows.ids),
        among=windows.ids,
        alpha=scorer.searched_alpha,
        bias=scorer.bias,
    )
    ids, scores = result.ids[0], result.scores[0]
    ids, scores = ids[ids >= 0], scores[ids >= 0]
    at = np.searchsorted(windows.ids, ids)  # every id found is one of `windows`
    raw, relevance = _scored(scorer, modality, ids, scores)
    relevances = [None] * len(ids) if relevance is None else relevance.tolist()
    spans = zip(windows.starts[at].tolist(), windows.ends[at].tolist(), strict=True)
    return [
        (path, (start, end, cosine, known))
        for path, (start, end), cosine, known in zip(
            windows.paths[at].tolist(), spans, raw.tolist(), relevances, strict=True
        )
    ]


def _scored(
    scorer: Scorer, modality: Modality, ids: np.ndarray, searched: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw cosines and relevances of segments `ids` from their FAISS scores (as scoring.py's
    with_relevance does for hits: the same null, the same biases)."""
    library, alpha = scorer.library, scorer.alpha
    biases = library.segment_biases(modality, ids, scorer.bias)
    biases = biases.astype(np.float64)
    raw = np.asarray(searched, dtype=np.float64) + scorer.searched_alpha * biases
    null = _null(scorer, modality)
    return raw, None if null is None else null.relevance(raw - alpha * biases)


def _null(scorer: Scorer, modality: Modality) -> Calibration | None:
    """The null distribution a stream's relevances come from (as scoring.with_relevance's)."""
    if scorer.has_text:
        return calibration(scorer.library, modality, scorer.alpha).text
    return own_null(scorer.library, modality, scorer.query_vectors[modality], scorer.alpha)


def with_moments(hit: Hit, windows: Windows | None, mode: Match, count: int, order: str) -> Hit:
    """`hit` with its file's best `count` moments (none without windows)."""
    if windows is None or not len(windows) or count <= 0:
        return hit
    return replace(hit, moments=tuple(find_moments(windows, mode, count, order=order)))


def fused_hit(hit: Hit, windows: Windows, mode: Match, count: int, order: str) -> Hit | None:
    """`hit` ranked by its file's best fused window (`--match both`): its relevance the fused
    relevance, its score the fused raw cosine, its span that window; None when no window has
    the streams the mode needs."""
    moments = find_moments(windows, mode, max(count, 1), order=order)
    if not moments:
        return None
    best = moments[0]
    raw, _, _ = fused_values(windows, mode, "score")
    at = _window_index(windows, best)
    return replace(
        hit,
        modality=Modality.VIDEO,
        score=float(raw[at]),
        relevance=best.relevance,
        start_s=best.best_start_s,
        end_s=best.best_end_s,
        moments=tuple(moments[:count]),
    )


def _window_index(windows: Windows, moment: Moment) -> int:
    gaps = np.abs(windows.start_s - moment.best_start_s) + np.abs(windows.end_s - moment.best_end_s)
    return int(np.argmin(gaps))


# ---- `--match both`, exact: the threshold algorithm's bound and stop test ----------------


def unseen_bound(scorer: Scorer, thresholds: dict[Modality, float | None], by_score: bool) -> float:
    """The most a file in no stream's top k can fuse to under `both`, on the ranking's scale.

    `thresholds`: each stream's k-th FAISS score (None: the stream was searched to its end, so
    such a file has no window there and no `both` value). Each of that file's windows scores at
    most the threshold in each stream, and the soft minimum is monotone in both arguments, so its
    best window fuses to at most the fusion of the two thresholds. inf where a threshold cannot
    be put on the ranking's scale (no calibration while FAISS ranked by corrected scores)."""
    values = []
    for modality in TIMED:
        threshold = thresholds.get(modality)
        if threshold is None:
            return -math.inf
        values.append(_on_ranking_scale(scorer, modality, threshold, by_score))
    softness = RAW_SCALE.softness if by_score else RELEVANCE_SCALE.softness
    if math.inf in values:  # soft_min(inf, b) = b + t ln 2; inf if both are unbounded
        return min(values) + softness * math.log(2.0)
    return float(soft_min(np.array(values[0]), np.array(values[1]), softness))


def _on_ranking_scale(scorer: Scorer, modality: Modality, searched: float, by_score: bool) -> float:
    """A FAISS score of `modality` as the value windows are ranked by: the raw cosine when
    ranking by score (exact only when FAISS searched raw cosines), else the relevance."""
    if by_score:
        return searched if scorer.searched_alpha == 0 else math.inf
    null = _null(scorer, modality)
    if null is None or scorer.searched_alpha != scorer.alpha:
        return math.inf
    return float(null.relevance(searched))


def both_settled(
    scorer: Scorer, hits: list[Hit], thresholds: dict[Modality, float | None], query: Query
) -> bool:
    """True when the `limit` best fused files are known: the limit-th best value among the
    files seen (those the query keeps) is at least what any unseen file can reach."""
    kept = [h for h in hits if query.min_score is None or h.score >= query.min_score]
    by_score = ranks_by_score(query, kept)
    bound = unseen_bound(scorer, thresholds, by_score)
    if bound == -math.inf:
        return True
    values = sorted((rank_key(h, by_score) for h in kept), reverse=True)
    return len(values) >= query.limit and values[query.limit - 1] >= bound
