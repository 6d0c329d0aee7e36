"""Why a search found nothing, in words every front end shows as they are."""

from __future__ import annotations

from pathlib import Path

from ..types import Modality
from .query import Query

INDEX_HINT = "index a folder first: lbsearch index FOLDER"


def nothing_indexed(root: Path) -> str:
    return f"nothing indexed yet in the library at {root}; {INDEX_HINT}"


def explain_no_match(query: Query, indexed: tuple[Modality, ...], root: Path) -> str:
    """The sentence for an empty answer: an empty library, modalities it lacks, or filters."""
    if not indexed:
        return nothing_indexed(root)
    missing = [m.value for m in query.modalities if m not in indexed]
    if query.modalities and len(missing) == len(query.modalities):
        have = ", ".join(m.value for m in indexed)
        return f"no match: the library has no {', '.join(missing)} files (it has {have})"
    if query.min_score is not None and not (query.is_filtered() and _filters_besides_score(query)):
        return f"no match: no result scores {query.min_score:g} or more (try a lower min-score)"
    if query.is_filtered():
        return "no match (try fewer filters)"
    return "no match"


def _filters_besides_score(query: Query) -> bool:
    bounds = (query.after, query.before, query.min_duration_s, query.max_duration_s)
    return bool(query.path_globs) or any(b is not None for b in bounds)
