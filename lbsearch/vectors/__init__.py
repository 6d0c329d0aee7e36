"""Vector indices: one FAISS index per modality, derived from the catalog and rebuildable.

Importing this package is cheap; numpy and faiss load with the first use of its classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .index import (
        IndexKind,
        IndexPlan,
        SearchResult,
        VectorIndex,
        VectorIndexError,
        faiss_module,
        plan_index,
    )
    from .store import IndexCheck, IndexInfo, IndexMeta, VectorStore

_INDEX = {
    "IndexKind",
    "IndexPlan",
    "SearchResult",
    "VectorIndex",
    "VectorIndexError",
    "faiss_module",
    "plan_index",
}
_STORE = {"IndexCheck", "IndexInfo", "IndexMeta", "VectorStore"}
__all__ = [
    "IndexCheck",
    "IndexInfo",
    "IndexKind",
    "IndexMeta",
    "IndexPlan",
    "SearchResult",
    "VectorIndex",
    "VectorIndexError",
    "VectorStore",
    "faiss_module",
    "plan_index",
]


def __getattr__(name: str) -> Any:
    if name in _INDEX:
        from . import index

        return getattr(index, name)
    if name in _STORE:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'lbsearch.vectors' has no attribute {name!r}")
