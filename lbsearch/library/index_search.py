"""Searching one modality's loaded index, as the catalog allows.

FAISS finds the top k in the index (`LibraryIndices` keeps it equal to the catalog), except in
two cases. A filter that leaves a few segments (a moment search asks for the segments of the
files it found) has them scored exactly from their rows: FAISS would scan the whole index with
a selector, and an IVF index would probe only some of its lists. A compressed (IVF-PQ) index has
its top k re-ranked from the stored vectors. Scores are `q.v - alpha * bias`, the bias column of
the query's kind (text or example file) being part of the rows, so every path ranks alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..types import Modality
from ..vectors.bias import query_with_bias
from ..vectors.index import SearchResult, VectorIndexError, unique_ids
from ..vectors.kinds import BiasKind
from ..vectors.plan import IndexKind, index_dim
from ..vectors.store import rerank

if TYPE_CHECKING:
    from .indices import LibraryIndices

SCORE_ALLOWED = 1024  # up to this many allowed segments are scored from their rows directly


def search_index(
    indices: LibraryIndices,
    modality: Modality,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    alpha: float = 0.0,
    kind: BiasKind = BiasKind.TEXT,
    every: bool = False,
) -> SearchResult:
    """Top-k segment ids and scores `q.v - alpha * bias` per query row (alpha 0: cosine),
    the bias of `kind` (text or example-file queries); compressed indices re-ranked exactly.
    `every`: score every id of `allowed` exactly, however many (an IVF scan with a selector
    probes only some lists, and so can miss some of them)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    index = indices.index(modality)
    if index is None:
        return SearchResult.empty(len(queries), max(k, 0))
    dim = index.dim - index_dim(index.plan, 0)
    if queries.ndim != 2 or queries.shape[1] != dim:
        state = indices.catalog.modality_state(modality)
        raise VectorIndexError(
            f"{indices.store.path(modality)}: query vectors of shape {tuple(queries.shape)} do "
            f"not fit the {modality} index ({dim} dimensions, model "
            f"{state.model_id if state else '?'})",
            "encode queries with the text tower of the model the library was indexed with "
            "(`lbsearch status` lists the models)",
        )
    queries = query_with_bias(queries, alpha, index.dim, kind)
    scored = (kind,) if alpha else ()  # the bias column the query's -alpha meets
    if allowed is not None and len(allowed) > 0 and (every or len(allowed) <= SCORE_ALLOWED):
        return _score_allowed(indices, modality, index.dim, queries, k, allowed, scored)
    found = indices.store.search(modality, index, queries, k, allowed=allowed)
    if index.plan.kind is not IndexKind.IVF_PQ:
        return found
    stored = indices.catalog.vectors_by_ids(modality, unique_ids(found.ids[found.ids >= 0]))
    rows = indices.references.rows(modality, stored.ids, stored.vectors, index.dim, scored)
    return rerank(queries, found, stored.ids, rows, k)


def _score_allowed(
    indices: LibraryIndices,
    modality: Modality,
    width: int,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray,
    kinds: tuple[BiasKind, ...],
) -> SearchResult:
    """Exact scores of a few allowed segments, from the rows the loaded index holds for them
    (biases included: no catalog read, and no bias computed again, which for ~100 moment
    windows against the bank took 5-50 ms a query at 100k segments), or from the catalog's
    stored vectors where the index does not hold them all yet."""
    index = indices.store.loaded(modality)
    ids = unique_ids(allowed)
    rows = index.rows(ids) if index is not None else None
    if rows is None:
        stored = indices.catalog.vectors_by_ids(modality, allowed)
        ids = stored.ids
        rows = indices.references.rows(modality, stored.ids, stored.vectors, width, kinds)
    everyone = np.tile(ids, (len(queries), 1))
    unscored = SearchResult(everyone, np.zeros(everyone.shape, np.float32))
    return rerank(queries, unscored, ids, rows, k)
