"""The query language: what a front end collects (`QueryRequest`, strings) -> a `Query`.

One parser for `lbsearch query`, `lbsearch browse` and `lbsearch serve`, so a weight, a date or
a glob means the same everywhere:

- a text or example may end in `:WEIGHT` ("dog:2", "bark.wav:0.5"); a text that itself ends in
  `:NUMBER` needs an explicit weight ("10:30:1"); an example path that exists as given is never
  split. Weights are above 0; negatives (`nots`, `not_like`) count with the opposite sign.
- dates: an ISO date means the whole day, local time (`after` from its first moment, `before`
  up to its last); a date-time is exact (both bounds inclusive); a zone may be given. Every date
  Python can write is a bound, 0001-01-01 and 9999-12-31 included: one past the times a file
  can have simply matches nothing (or everything).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ..errors import UsageError
from ..types import Modality
from .match import Match
from .query import Query, Term, check_query

_WEIGHT = re.compile(r"^(?P<body>.*\S)\s*:\s*(?P<weight>[-+]?(\d+(\.\d*)?|\.\d+))$", re.DOTALL)
_LAST_MOMENT = timedelta(microseconds=1)  # "before DAY" ends 1 µs before the next midnight
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class QueryRequest:
    """What any front end collects, as strings (command-line flags, a query box, a web form)."""

    texts: tuple[str, ...] = ()  # each may end in ":WEIGHT" ("dog:2")
    nots: tuple[str, ...] = ()  # negative texts (weight -1, or "x:0.5" -> -0.5)
    like: tuple[str, ...] = ()  # example file paths, ":WEIGHT" allowed
    not_like: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # globs
    after: str | None = None  # ISO date or date-time
    before: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    limit: int = 20
    min_score: float | None = None
    order: str = "relevance"  # or "score"
    min_relevance: float | None = None
    all: bool = False  # no cut-off
    match: str = "any"  # any, both, picture or sound (moments.py)
    moments: int = 1  # moments per video or audio file


def parse_query(request: QueryRequest) -> Query:
    """The `Query` for `request`; UsageError (with a hint) on anything that cannot run."""
    terms = [_text_term(t, 1.0) for t in request.texts] + [
        _text_term(t, -1.0) for t in request.nots
    ]
    terms += [_file_term(p, 1.0) for p in request.like]
    terms += [_file_term(p, -1.0) for p in request.not_like]
    query = Query(
        terms=tuple(terms),
        modalities=tuple(dict.fromkeys(Modality.parse(m) for m in request.modalities)),
        path_globs=tuple(g for g in request.paths if g.strip()),
        after=parse_after(request.after) if request.after else None,
        before=parse_before(request.before) if request.before else None,
        min_duration_s=request.min_duration,
        max_duration_s=request.max_duration,
        limit=request.limit,
        min_score=request.min_score,
        order=request.order,
        min_relevance=request.min_relevance,
        cut=not request.all,
        match=Match.parse(request.match),
        moments=request.moments,
    )
    if query.after is not None and query.before is not None and query.after > query.before:
        raise UsageError(
            f"after {request.after} is later than before {request.before}",
            "no file can match; swap the dates",
        )
    check_query(query)
    return query


def parse_weighted(text: str) -> tuple[str, float]:
    """Split a trailing `:WEIGHT` off a term: "dog:2" -> ("dog", 2.0); "dog" -> ("dog", 1.0)."""
    match = _WEIGHT.match(text)
    if match is None:
        return text, 1.0
    return match["body"], float(match["weight"])


def parse_after(text: str) -> float:
    """Unix seconds from which files count: a date's first moment, or the exact date-time."""
    return _unix_seconds(_parse_moment(text))


def parse_before(text: str) -> float:
    """Unix seconds up to which files count: a date's last moment, or the exact date-time."""
    moment = _parse_moment(text)
    if _is_date(text):
        moment += timedelta(days=1) - _LAST_MOMENT  # 9999-12-31 ends at datetime.max: no overflow
    return _unix_seconds(moment)


def _unix_seconds(moment: datetime) -> float:
    """`moment.timestamp()`, also for the years the C library cannot convert (local time near
    0001-01-01 or 9999-12-31 raises there): these take the zone's offset of today, which
    cannot move a bound across any file's modification time."""
    try:
        return moment.timestamp()
    except (OverflowError, ValueError, OSError):
        offset = moment.utcoffset()
        if offset is None:
            offset = datetime.now(UTC).astimezone().utcoffset() or timedelta(0)
        return (moment.replace(tzinfo=None) - _EPOCH).total_seconds() - offset.total_seconds()


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def _parse_moment(text: str) -> datetime:
    """An ISO date (midnight) or date-time; without a zone it is local time."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{text!r} is not a date",
            "use an ISO date like 2024-05-01 or a date and time like 2024-05-01T14:30",
        ) from None


def _text_term(word: str, sign: float) -> Term:
    body, weight = parse_weighted(word)
    return Term(text=body, weight=_signed(sign, weight, word))


def _file_term(given: str, sign: float) -> Term:
    """An example path; a ":WEIGHT" suffix only when the path as given does not exist."""
    exists = Path(given).expanduser().exists()
    body, weight = (given, 1.0) if exists else parse_weighted(given)
    return Term(file=Path(body), weight=_signed(sign, weight, given))


def _signed(sign: float, weight: float, word: str) -> float:
    if weight <= 0:
        raise UsageError(
            f"{word!r}: the weight must be above 0", "to push results away, make it a not"
        )
    return sign * weight
