"""Search: the query language (one parser for every front end) and the engine.

- `QueryRequest` (strings, as a front end collects them) -> `parse_query` -> `Query`
- `parse_box(text)`: the query box syntax of `browse` and `serve` (box.py documents it);
  `format_box(request)` writes a request back as box text
- `SearchEngine(library, config, embedder).search(query)` -> `Hit`s, best first;
  `explain_no_match(query)` says why an answer is empty
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .box import format_box, looks_like_path, parse_box
    from .engine import SearchEngine
    from .explain import nothing_indexed
    from .language import QueryRequest, parse_after, parse_before, parse_query, parse_weighted
    from .query import Hit, Query, Term, check_query, normalise_glob, segment_filter

# Loaded on first use: a module that needs one part (the query language) does not pay for the rest.
_WHERE = {
    "format_box": ".box",
    "looks_like_path": ".box",
    "parse_box": ".box",
    "SearchEngine": ".engine",
    "nothing_indexed": ".explain",
    "QueryRequest": ".language",
    "parse_after": ".language",
    "parse_before": ".language",
    "parse_query": ".language",
    "parse_weighted": ".language",
    "Hit": ".query",
    "Query": ".query",
    "Term": ".query",
    "check_query": ".query",
    "normalise_glob": ".query",
    "segment_filter": ".query",
}


__getattr__ = lazy_names(__name__, _WHERE)

__all__ = [
    "Hit",
    "Query",
    "QueryRequest",
    "SearchEngine",
    "Term",
    "check_query",
    "format_box",
    "looks_like_path",
    "normalise_glob",
    "nothing_indexed",
    "parse_after",
    "parse_before",
    "parse_box",
    "parse_query",
    "parse_weighted",
    "segment_filter",
]
