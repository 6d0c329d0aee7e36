"""Request fields -> the core's `Query`, and uploads -> private temporary files.

The fields are those of `lbsearch query`, one name each (q, not, m, path, after, before,
min_duration, max_duration, limit, min_score) and are parsed by the CLI's own functions, so the
page and the API take exactly the CLI's syntax (TEXT:WEIGHT, ISO dates, modality names).

ADAPTER, to be replaced: when `lbsearch.search.QueryRequest` / `parse_query` land, `to_query`
becomes `parse_query(QueryRequest(...))` and `box` goes through `parse_box`; nothing else here
parses a query.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import ImmutableMultiDict

from lbsearch.errors import UsageError

if TYPE_CHECKING:
    from lbsearch.search import Query

MAX_LIMIT = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


Fields = ImmutableMultiDict[str, Any]  # Starlette's QueryParams and FormData


@dataclass(frozen=True)
class SearchForm:
    """What a search request asked for; `like`/`not_like` are server-side files (uploads written
    to a private folder, or catalog files chosen by id), never paths from the request."""

    texts: tuple[str, ...] = ()
    nots: tuple[str, ...] = ()
    like: tuple[Path, ...] = ()
    not_like: tuple[Path, ...] = ()
    modalities: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    after: str | None = None
    before: str | None = None
    min_duration: str | None = None
    max_duration: str | None = None
    limit: str | None = None
    min_score: str | None = None


def read_form(
    fields: Fields, like: Sequence[Path] = (), not_like: Sequence[Path] = ()
) -> SearchForm:
    return SearchForm(
        texts=_texts(fields, "q"),
        nots=_texts(fields, "not"),
        like=tuple(like),
        not_like=tuple(not_like),
        modalities=tuple(m for value in _texts(fields, "m") for m in value.split(",") if m),
        paths=_texts(fields, "path"),
        after=_one(fields, "after"),
        before=_one(fields, "before"),
        min_duration=_one(fields, "min_duration"),
        max_duration=_one(fields, "max_duration"),
        limit=_one(fields, "limit"),
        min_score=_one(fields, "min_score"),
    )


def to_query(form: SearchForm) -> Query:
    """The core query for the form; UsageError (HTTP 400) for anything the CLI would refuse."""
    from ..query import build_query, parse_terms

    asked = _number("limit", form.limit)
    limit = 20 if asked is None else int(asked)
    if limit > MAX_LIMIT:
        raise UsageError(f"limit {limit} is more than {MAX_LIMIT}", "ask for fewer results")
    return build_query(
        terms=parse_terms(list(form.texts), list(form.like), list(form.nots), list(form.not_like)),
        modality=list(form.modalities),
        path=list(form.paths),
        dates=(form.after, form.before),
        durations=(
            _number("min_duration", form.min_duration),
            _number("max_duration", form.max_duration),
        ),
        limit=limit,
        min_score=_number("min_score", form.min_score),
    )


def file_ids(fields: Fields, name: str) -> list[int]:
    """Catalog file ids given as `name` (for "similar": search by an indexed file)."""
    ids = []
    for value in _texts(fields, name):
        if not value.isdigit():
            raise UsageError(f"{name}={value!r} is not a file id", "use the file_id of a result")
        ids.append(int(value))
    return ids


def _texts(fields: Fields, name: str) -> tuple[str, ...]:
    values = [v.strip() for v in fields.getlist(name) if isinstance(v, str)]
    return tuple(v for v in values if v)


def _one(fields: Fields, name: str) -> str | None:
    values = _texts(fields, name)
    if len(values) > 1:
        raise UsageError(f"{name} was given {len(values)} times", f"give {name} once")
    return values[0] if values else None


def _number(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number", f"give {name} as a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{name}={text!r} is not a finite number", f"give {name} as a number")
    if name == "limit" and value != int(value):
        raise UsageError(f"limit={text!r} is not a whole number", "give a count like 20")
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
