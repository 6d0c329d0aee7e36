"""Request fields -> the core's `Query` (through `QueryRequest` and `parse_query`, the one
query language), and uploads -> private temporary files.

Fields: `box` (the page's query box, read by `parse_box`: the CLI's syntax in one line) and the
fields of `lbsearch query`, one name each (q, not, m, path, after, before, min_duration,
max_duration, limit, min_score). Lists add up; a single value given twice (in the box and as a
field) must agree. Example files come only from uploads or catalog ids: a path typed in the box
(`like:/x`, `~/x.jpg`) is refused, so a client can never make the service read a file it names.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import ImmutableMultiDict

from lbsearch.errors import UsageError
from lbsearch.search import QueryRequest, parse_box, parse_query
from lbsearch.search.moments import Match

if TYPE_CHECKING:
    from lbsearch.search import Query

MAX_LIMIT = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_NUMBERS = ("min_duration", "max_duration", "min_score")
_LISTS = ("texts", "nots", "modalities", "paths")

Fields = ImmutableMultiDict[str, Any]  # Starlette's QueryParams and FormData


def read_request(
    fields: Fields, like: Sequence[Path] = (), not_like: Sequence[Path] = ()
) -> QueryRequest:
    """The request the fields (and the server-side example files) make; UsageError if bad."""
    boxed = _box(fields)
    request = QueryRequest(
        texts=_texts(fields, "q"),
        nots=_texts(fields, "not"),
        modalities=tuple(m for value in _texts(fields, "m") for m in value.split(",") if m),
        paths=_texts(fields, "path"),
        after=_one(fields, "after"),
        before=_one(fields, "before"),
        limit=_limit(fields),
        min_duration=_number("min_duration", _one(fields, "min_duration")),
        max_duration=_number("max_duration", _one(fields, "max_duration")),
        min_score=_number("min_score", _one(fields, "min_score")),
        min_relevance=_number("min_relevance", _one(fields, "min_relevance")),
        order=_one(fields, "order") or "relevance",  # or "score"; parse_query checks it
        all=_one(fields, "all") in ("1", "true"),  # no cut-off, as `query --all`
        match=_one(fields, "match") or "any",  # any, both, picture, sound; parse_query checks it
        moments=_moments(fields),
    )
    merged = {name: getattr(boxed, name) + getattr(request, name) for name in _LISTS}
    for name in ("after", "before", *_NUMBERS):
        merged[name] = _agree(name, getattr(boxed, name), getattr(request, name))
    asked = _one(fields, "match")  # the box's match: (not "any") and the field must agree
    asked = Match.parse(asked).value if asked else None
    merged["match"] = _agree("match", None if boxed.match == "any" else boxed.match, asked) or "any"
    return dataclasses.replace(
        request,
        **merged,
        like=tuple(str(p) for p in like),
        not_like=tuple(str(p) for p in not_like),
    )


def to_query(request: QueryRequest) -> Query:
    """The core query; UsageError (HTTP 400) for anything the CLI would refuse."""
    return parse_query(request)


def file_ids(fields: Fields, name: str) -> list[int]:
    """Catalog file ids given as `name` (for "similar": search by an indexed file)."""
    ids = []
    for value in _texts(fields, name):
        if not (value.isascii() and value.isdigit() and len(value) <= 18):  # "²", 10**5000
            raise UsageError(f"{name}={value[:20]!r} is not a file id", "use a result's file_id")
        ids.append(int(value))
    return ids


def _box(fields: Fields) -> QueryRequest:
    text = _one(fields, "box")
    if text is None:
        return QueryRequest()
    boxed = parse_box(text)
    if boxed.like or boxed.not_like:
        raise UsageError(
            "the query box cannot name files on the server",
            "drop the file on the page (or upload it as `like`), or use Similar on a result",
        )
    return boxed


def _agree(name: str, first: Any, second: Any) -> Any:
    if first is not None and second is not None and first != second:
        raise UsageError(f"{name} is given twice ({first} and {second})", f"give {name} once")
    return second if second is not None else first


def _texts(fields: Fields, name: str) -> tuple[str, ...]:
    values = [v.strip() for v in fields.getlist(name) if isinstance(v, str)]
    return tuple(v for v in values if v)


def _one(fields: Fields, name: str) -> str | None:
    values = _texts(fields, name)
    if len(values) > 1:
        raise UsageError(f"{name} was given {len(values)} times", f"give {name} once")
    return values[0] if values else None


def _limit(fields: Fields) -> int:
    asked = _number("limit", _one(fields, "limit"))
    if asked is None:
        return 20
    if asked != int(asked):
        raise UsageError(f"limit={asked:g} is not a whole number", "give a count like 20")
    if asked > MAX_LIMIT:
        raise UsageError(f"limit {asked:g} is more than {MAX_LIMIT}", "ask for fewer results")
    return int(asked)


def _moments(fields: Fields) -> int:
    """`moments=N`: moments per video or audio file, as `query --moments` (at most 20 here: a
    server bounds what one request costs)."""
    asked = _number("moments", _one(fields, "moments"))
    if asked is None:
        return 1
    if asked != int(asked) or not 0 <= asked <= 20:
        raise UsageError(f"moments={asked:g} is not a whole number from 0 to 20", "give moments=1")
    return int(asked)


def _number(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number", f"give {name} as a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{name}={text!r} is not a finite number", f"give {name} as a number")
    return value


# ------------------------------------------------------------------------------ uploads


class UploadFolder:
    """A private (0700) temporary folder for one request's uploads, deleted afterwards."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="lbsearch-upload-")
        self.path = Path(self._folder.name)
        self._count = 0
        self._names: dict[str, str] = {}

    def new_file(self, filename: str | None) -> Path:
        """A fresh path named after the upload (classification reads its extension and globs
        such as `*_depth.png`), with only safe characters and no folders."""
        self._count += 1
        name = _UNSAFE.sub("_", Path(filename or "").name)[-80:].lstrip(".")
        path = self.path / f"upload-{self._count}-{name or 'file'}"
        self._names[str(path)] = filename or "an upload"
        return path

    def shown_name(self, path: str) -> str:
        """The name the client gave the upload at `path` (its temporary path stays private)."""
        return self._names.get(str(path), "an upload")

    def close(self) -> None:
        self._folder.cleanup()

    def __enter__(self) -> UploadFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
