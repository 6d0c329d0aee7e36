"""A file's picture and sound windows scored against the query, for fused windows and moments.

A video is indexed as picture windows (the video index) plus a sound-track window for each of
them (the audio index, same start and end); an audio file as sound windows. For the files a
search found, every window of theirs is scored in one filtered search per stream (the index's
own scores, so a window's raw cosine and relevance are exactly those its hit would have), then
joined per file by span (moments.windows_from_streams) and turned into moments.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..catalog.records import SegmentFilter
from ..types import Modality
from .moments import Match, Moment, Windows, find_moments, fused_values, windows_from_streams
from .query import Hit
from .scoring import with_relevance

if TYPE_CHECKING:
    from ..library import Library

Row = tuple[float, float, float, float | None]  # start_s, end_s, raw cosine, relevance
TIMED = (Modality.VIDEO, Modality.AUDIO)  # the streams with time windows
_FIRST_K = 256


def stream_modalities(mode: Match) -> tuple[Modality, ...] | None:
    """The modalities a match mode searches (None: every one): `picture` leaves out sound
    windows, `sound` keeps only them, `both` needs a video's two streams."""
    if mode is Match.SOUND:
        return (Modality.AUDIO,)
    if mode is Match.BOTH:
        return TIMED
    if mode is Match.PICTURE:
        return tuple(m for m in Modality if m is not Modality.AUDIO)
    return None


def glob_literal(path: str) -> str:
    """`path` as a GLOB pattern that matches only itself (*, ? and [ in brackets)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


@dataclass(frozen=True)
class Scorer:
    """What scoring a stream's windows needs: the query vector per modality and the alphas."""

    library: Library
    vectors: dict[Modality, np.ndarray]
    searched_alpha: float
    alpha: float
    has_text: bool


def file_windows(scorer: Scorer, paths: list[str]) -> dict[str, Windows]:
    """Every window of the files `paths` (videos and audio files), per path, scored."""
    streams: dict[str, dict[Modality, list[Row]]] = defaultdict(lambda: {m: [] for m in TIMED})
    for modality in TIMED:
        if modality in scorer.vectors and paths:
            for path, row in _stream_rows(scorer, modality, paths):
                streams[path][modality].append(row)
    return {
        path: windows_from_streams(rows[Modality.VIDEO], rows[Modality.AUDIO])
        for path, rows in streams.items()
    }


def _stream_rows(scorer: Scorer, modality: Modality, paths: list[str]) -> list[tuple[str, Row]]:
    """(path, window row) for every segment of `modality` of the files `paths`."""
    library, vector = scorer.library, scorer.vectors[modality]
    where = SegmentFilter(path_globs=tuple(glob_literal(p) for p in paths))
    k = min(library.index_size(modality), _FIRST_K)
    while k > 0:
        result = library.search(
            modality, vector[None, :], k, where=where, alpha=scorer.searched_alpha
        )
        ids, scores = result.ids[0], result.scores[0]
        if (ids < 0).any() or k >= library.index_size(modality):
            break
        k = min(library.index_size(modality), 4 * k)  # the files have more windows than k
    found = ids >= 0
    segments = library.segments_by_ids(ids[found])
    hits = {
        int(i): Hit(
            h.file.path,
            modality,
            float(s),
            h.segment.start_s,
            h.segment.end_s,
            int(i),
            h.file.duration_s,
            h.file.size,
            0.0,
        )
        for i, s in zip(ids[found].tolist(), scores[found].tolist(), strict=True)
        if (h := segments.get(int(i))) is not None
    }
    scored = with_relevance(
        library, modality, hits, vector, scorer.searched_alpha, scorer.alpha, scorer.has_text
    )
    return [(h.path, (h.start_s, h.end_s, h.score, h.relevance)) for h in scored.values()]


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
