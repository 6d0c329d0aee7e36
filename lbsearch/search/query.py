"""The typed query the engine runs, and the hits it answers with.

A `Query` is a weighted sum of terms (texts and example files; a negative weight is a "not")
plus filters on the files. Front ends do not build it by hand: they collect strings in a
`QueryRequest` and call `parse_query` (language.py), so every front end reads the same syntax.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..types import Modality
from .match import Match, Moment, stream_modalities

if TYPE_CHECKING:
    from ..catalog.records import SegmentFilter


@dataclass(frozen=True)
class Hit:
    """One file found: the segment that matched best (its modality's index, time span, id)."""

    path: str
    modality: Modality
    score: float
    start_s: float
    end_s: float
    segment_id: int
    duration_s: float | None
    size: int
    mtime: float
    offline: bool = False  # its folder could not be listed at the last run (kept, marked)
    relevance: float | None = None  # calibrated, comparable across modalities (relevance.py)
    weak: bool = False  # shown although below the bar: nothing cleared it (relevance.py)
    moments: tuple[Moment, ...] = ()  # a video's or audio file's best spans (moments.py)


@dataclass(frozen=True)
class Term:
    """A text or an example file with a weight; a negative weight pushes matches away."""

    text: str | None = None
    file: Path | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]
    modalities: tuple[Modality, ...] = ()  # empty: every indexed modality
    path_globs: tuple[str, ...] = ()
    after: float | None = None  # file mtime, Unix seconds, inclusive
    before: float | None = None  # inclusive
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    limit: int = 20
    min_score: float | None = None
    order: str = "relevance"  # or "score": raw cosine
    min_relevance: float | None = None  # the bar, replacing the default cut-off
    cut: bool = False  # the default cut-off (front ends: on unless --all; QueryRequest.all)
    match: Match = Match.ANY  # which stream of a video window must match (moments.py)
    moments: int = 1  # moments per video or audio file

    @property
    def examples(self) -> tuple[Path, ...]:
        return tuple(t.file for t in self.terms if t.file is not None)

    def is_filtered(self) -> bool:
        """True when a filter besides the modalities can hide files."""
        bounds = (self.after, self.before, self.min_duration_s, self.max_duration_s)
        return (
            bool(self.path_globs)
            or any(b is not None for b in bounds)
            or (self.min_score is not None)
        )


def check_query(query: Query) -> None:
    """UsageError for a query that cannot run (no terms, empty text, zero weight, bad limit)."""
    if not query.terms:
        raise UsageError("nothing to search for", "give a text, or an example file to search by")
    for term in query.terms:
        if (term.text is None) == (term.file is None):
            raise UsageError("a query term is a text or a file, not both or neither")
        if term.text is not None and not term.text.strip():
            raise UsageError("an empty text cannot be searched for", "give some words")
        if term.weight == 0 or not math.isfinite(term.weight):
            raise UsageError(f"term weight {term.weight} is not usable", "use a non-zero number")
    if not any(t.weight > 0 for t in query.terms):
        raise UsageError("every term is negative", "add something to look for, not only a not")
    if query.order not in ("relevance", "score"):
        raise UsageError(f"unknown order {query.order!r}", "order by relevance or score")
    streams = stream_modalities(query.match)
    if query.modalities and streams is not None and not set(query.modalities) & set(streams):
        asked = ", ".join(m.value for m in query.modalities)
        raise UsageError(
            f"--match {query.match.value} searches none of the modalities asked ({asked})",
            "both searches video, picture any modality but audio, sound audio; or drop -m",
        )
    if query.moments < 0:
        raise UsageError(f"--moments {query.moments} is below 0", "ask for 0 or more moments")
    if query.limit < 1:
        raise UsageError(f"a limit of {query.limit} is less than 1", "ask for at least one result")


# The catalog keeps modification times as signed 64-bit nanoseconds (years 1677-2262): a bound
# outside that span is moved to its edge, where it matches the same files (all or none).
_MTIME_EDGE_S = 9_223_372_036.0


def segment_filter(query: Query) -> SegmentFilter:
    from ..catalog.records import SegmentFilter  # 22 dataclasses: ~20 ms a cold query skips

    return SegmentFilter(
        path_globs=tuple(normalise_glob(g) for g in query.path_globs),
        modified_after=_within_mtimes(query.after),
        modified_before=_within_mtimes(query.before),
        min_duration_s=query.min_duration_s,
        max_duration_s=query.max_duration_s,
    )


def _within_mtimes(seconds: float | None) -> float | None:
    return None if seconds is None else min(max(seconds, -_MTIME_EDGE_S), _MTIME_EDGE_S)


def normalise_glob(pattern: str) -> str:
    """A user's path glob as a glob on absolute paths (`*` also crosses `/`).

    Absolute patterns and those starting with `*` stay; `~` expands; `./x` and `../x` are taken
    from the current folder; any other relative pattern matches at any depth (`photos/*` is
    `*/photos/*`).
    """
    pattern = os.path.expanduser(pattern)  # noqa: PTH111 - a glob: keep it a string
    if pattern.startswith(("/", "*")):
        return pattern
    if pattern.startswith(("./", "../")):
        return os.path.abspath(pattern)  # noqa: PTH100 - a glob, not a path to resolve
    return "*/" + pattern
