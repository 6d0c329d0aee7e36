"""The engine's scoring steps over hits: raw cosine and relevance per hit, ranking, cut-off.

FAISS ranks a modality's segments by `cosine - alpha * bias` (or raw cosine with alpha 0, for
`order="score"`), the bias of the query's kind (`BiasKind.of_query`: a query with a text uses the
caption bank's, one of example files only the library sample's); from each hit's bias the raw
cosine (`Hit.score`) and the calibrated relevance (`Hit.relevance`, relevance.py) follow exactly,
without a second search.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ..config import RelevanceConfig
from ..types import Modality
from ..vectors.kinds import BiasKind
from .calibration import calibration
from .query import Hit, Query
from .relevance import Calibration, cut_off

if TYPE_CHECKING:
    from ..library import Library

MIN_SAMPLE = 32  # segments an example-file query's own null needs


def with_relevance(
    library: Library,
    modality: Modality,
    hits: dict[int, Hit],
    vector: np.ndarray,
    searched_alpha: float,
    alpha: float,
    has_text: bool,
) -> dict[int, Hit]:
    """`hits` for query `vector` (scored by FAISS with `searched_alpha`) with their raw
    cosine as `score` and their relevance (None when the modality has no calibration yet)."""
    if not hits:
        return hits
    ids = np.array([h.segment_id for h in hits.values()], dtype=np.int64)
    searched = np.array([h.score for h in hits.values()], dtype=np.float64)
    raw, relevance = scored(
        library, modality, ids, searched, vector, searched_alpha, alpha, has_text
    )
    return {
        file_id: replace(
            hit,
            score=float(raw[i]),
            relevance=None if relevance is None else float(relevance[i]),
        )
        for i, (file_id, hit) in enumerate(hits.items())
    }


def scored(
    library: Library,
    modality: Modality,
    ids: np.ndarray,
    searched: np.ndarray,
    vector: np.ndarray,
    searched_alpha: float,
    alpha: float,
    has_text: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw cosines and relevances (None: the modality has no calibration yet) of segments
    `ids` from their FAISS scores `searched` (ranked with `searched_alpha`) for query `vector`.

    A query with a text is calibrated with the bank's null (the index file keeps it); one made
    of example files only, with its own scores against a sample of the library's segments (an
    example's cosines depend on its modality and the target's: no one null fits them all),
    both with the bias of the query's kind."""
    kind = BiasKind.of_query(has_text)
    biases = library.segment_biases(modality, ids, kind).astype(np.float64)
    raw = np.asarray(searched, dtype=np.float64) + searched_alpha * biases
    null = (
        calibration(library, modality, alpha).text
        if has_text
        else own_null(library, modality, vector, alpha)
    )
    relevance = null.relevance(raw - alpha * biases) if null is not None else None
    return raw, relevance


def own_null(
    library: Library, modality: Modality, vector: np.ndarray, alpha: float
) -> Calibration | None:
    sample, biases = library.segment_sample(modality, BiasKind.FILE)
    if len(sample) < MIN_SAMPLE:
        return None  # too few segments to tell a null from noise: the list ranks by score
    scores = sample @ np.asarray(vector, dtype=np.float32) - alpha * biases
    std = float(np.std(scores))
    return Calibration(float(np.mean(scores)), std) if std > 1e-9 else None


def rank_key(hit: Hit, by_score: bool) -> float:
    return hit.score if by_score or hit.relevance is None else hit.relevance


def ranks_by_score(query: Query, hits: list[Hit]) -> bool:
    """Rank by raw cosine when asked, or when a hit has no relevance (a modality without a
    calibration): relevances and cosines are not on one scale."""
    return query.order == "score" or any(h.relevance is None for h in hits)


def apply_cut_off(ranked: list[Hit], query: Query, settings: RelevanceConfig) -> list[Hit]:
    """The hits the query shows (ranked order kept), marked weak when so (see `shown`)."""
    relevances = [np.nan if h.relevance is None else h.relevance for h in ranked]
    keep, weak = shown(np.array(relevances, dtype=np.float64), query, settings)
    kept = [h for h, keep_it in zip(ranked, keep.tolist(), strict=True) if keep_it]
    return [replace(h, weak=True) for h in kept] if weak else kept


def shown(
    relevances: np.ndarray, query: Query, settings: RelevanceConfig
) -> tuple[np.ndarray, bool]:
    """Which ranked results the query shows (a mask; their relevances in ranked order, NaN
    for none), and whether they are weak: all with `cut=False`; those at or above
    `min_relevance` when given; else the default bar and autocut, or the best few marked weak
    when none clears it. Results without a relevance (no calibration) are all kept."""
    everything = np.ones(len(relevances), dtype=bool)
    if not query.cut or not len(relevances) or np.isnan(relevances).any():
        return everything, False
    explicit = query.min_relevance is not None
    bar = query.min_relevance if query.min_relevance is not None else settings.min_relevance
    cut = cut_off(
        relevances.tolist(), min_relevance=bar, gap=settings.autocut_gap, explicit=explicit
    )
    return cut.keep, cut.weak
