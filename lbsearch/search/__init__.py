"""Search: the query language (one parser for every front end) and the engine.

- `QueryRequest` (strings, as a front end collects them) -> `parse_query` -> `Query`
- `parse_box(text)`: the query box syntax of `browse` and `serve` (box.py documents it);
  `format_box(request)` writes a request back as box text
- `SearchEngine(library, config, embedder).search(query)` -> `Hit`s, best first;
  `explain_no_match(query)` says why an answer is empty
"""

from __future__ import annotations

from .box import format_box, looks_like_path, parse_box
from .engine import SearchEngine
from .explain import nothing_indexed
from .language import QueryRequest, parse_after, parse_before, parse_query, parse_weighted
from .query import Hit, Query, Term, check_query, normalise_glob, segment_filter

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
