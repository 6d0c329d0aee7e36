"""Vector indices: one FAISS index per modality, kept in files beside the catalog.

The indices are derived data: the library (`lbsearch.library`) decides what they must hold and
repairs or rebuilds them from the catalog; this package never reads the catalog itself.

Importing this package is cheap; numpy and faiss load with the first use of its classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .index import SearchResult, VectorIndex, VectorIndexError, faiss_module
    from .plan import IndexKind, IndexPlan, plan_index
    from .store import IndexMeta, VectorStore, rerank

_INDEX = {"SearchResult", "VectorIndex", "VectorIndexError", "faiss_module"}
_PLAN = {"IndexKind", "IndexPlan", "plan_index"}
_STORE = {"IndexMeta", "VectorStore", "rerank"}
__all__ = [
    "IndexKind",
    "IndexMeta",
    "IndexPlan",
    "SearchResult",
    "VectorIndex",
    "VectorIndexError",
    "VectorStore",
    "faiss_module",
    "plan_index",
    "rerank",
]


def __getattr__(name: str) -> Any:
    if name in _INDEX:
        from . import index

        return getattr(index, name)
    if name in _PLAN:
        from . import plan

        return getattr(plan, name)
    if name in _STORE:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'lbsearch.vectors' has no attribute {name!r}")
