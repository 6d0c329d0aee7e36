"""The query box syntax (`lbsearch browse`, the `serve` page): one line of text -> QueryRequest.

    sunset beach            words: one text (a run of words is one term)
    dog:2 cat               a word with :WEIGHT ends and weighs its run: "dog" x2, then "cat"
    "red car" "blue sky"    a quoted phrase is a term of its own, never a path or a filter
    -cat   not:cat          a negative text (-"a cat" for a phrase; -cat:0.5 halves it)
    ~/pics/dog.jpg          a path (starting with / ~ ./ ../, or a file name with a media
                            extension) searches by example; a path that does not exist is an
                            error, not a text: quote it to search for the words
    like:PATH  -like:PATH   an example file, positive or negative (like:"a b.jpg", like:x.jpg:2)
    m:video,audio           modalities (also modality:)
    match:both              which stream of a video window must match: any (the default),
                            both (picture and sound together), picture or sound (`--match`)
    path:GLOB               only files whose path matches (repeatable)
    after:DATE before:DATE  modification time: a date is the whole day, a date-time is exact
    min-duration:S  max-duration:S  min-score:X

The meaning of every part is the command line's (`parse_query` reads both); `format_box` writes
a request back as box text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import UsageError
from ..media.classify import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS
from .language import QueryRequest, parse_weighted
from .match import Match

_QUOTES = "\"'"
_MEDIA_EXTS = IMAGE_EXTS | VIDEO_EXTS | AUDIO_EXTS | {"npy"}
_PATH_START = re.compile(r"^(/|~|\./|\.\./|\\\\|[A-Za-z]:[\\/])")
_LIST_KEYS = {"like": "like", "m": "modalities", "modality": "modalities", "path": "paths"}
_TEXT_KEYS = {"not": "nots", "after": "after", "before": "before", "match": "match"}
_NUMBER_KEYS = {
    "min-duration": "min_duration",
    "max-duration": "max_duration",
    "min-score": "min_score",
}
_KEYS = _LIST_KEYS.keys() | _TEXT_KEYS.keys() | _NUMBER_KEYS.keys()


@dataclass(frozen=True)
class _Token:
    text: str
    bare: int  # leading characters typed outside quotes (an operator must be among them)
    quoted: bool


@dataclass
class _Collected:
    texts: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)  # unquoted words not yet made a text
    lists: dict[str, list[str]] = field(default_factory=dict)
    single: dict[str, object] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        self.lists.setdefault(name, []).append(value)


def parse_box(text: str) -> QueryRequest:
    """The request typed in a query box; UsageError for what cannot be meant (see module doc)."""
    got = _Collected()
    for token in _tokens(text):
        if not _operator(token, got):
            _plain(token, got)
    _end_run(got)
    lists = {name: tuple(values) for name, values in got.lists.items()}
    return replace(QueryRequest(texts=tuple(got.texts)), **lists, **got.single)  # type: ignore[arg-type]


def format_box(request: QueryRequest) -> str:
    """`request` as box text (what `parse_box` reads back as the same request, limit aside)."""
    parts = [_quote_text(t) for t in request.texts]
    parts += ["-" + _quote_text(t) for t in request.nots]
    parts += ["like:" + _quote(p) for p in request.like]
    parts += ["-like:" + _quote(p) for p in request.not_like]
    if request.modalities:
        parts.append("m:" + ",".join(request.modalities))
    parts += ["path:" + _quote(g) for g in request.paths]
    if request.match != Match.ANY:
        parts.append(f"match:{request.match}")
    bounds = {"after": request.after, "before": request.before}
    bounds |= {key: getattr(request, name) for key, name in _NUMBER_KEYS.items()}
    parts += [f"{key}:{_quote(str(value))}" for key, value in bounds.items() if value is not None]
    return " ".join(parts)


def looks_like_path(text: str) -> bool:
    """A run of words meant as a file: an absolute, home or ./ path, or one word naming a media
    file ("dog.jpg", "pics/dog.jpg")."""
    if _PATH_START.match(text):
        return True
    suffix = Path(text).suffix.lower().lstrip(".")
    return not any(c.isspace() for c in text) and suffix in _MEDIA_EXTS


# ------------------------------------------------------------------------------ parts


def _operator(token: _Token, got: _Collected) -> bool:
    """Handle `key:value` and `-...`; False if the token is a plain word."""
    negative = token.text.startswith("-") and token.bare >= 1 and len(token.text) > 1
    body = _Token(token.text[1:], token.bare - 1, token.quoted) if negative else token
    key, colon, value = body.text.partition(":")
    key = key.lower()
    known = bool(colon) and len(key) + 1 <= body.bare and key in _KEYS
    if not (known or negative):
        return False
    _end_run(got)
    if known and not value.strip():
        raise UsageError(f"{token.text!r} needs a value", f"e.g. {key}:{_EXAMPLES.get(key, 'x')}")
    if negative:
        if known and key != "like":
            raise UsageError(f"{token.text!r}: only texts and like: can be negative", "drop the -")
        got.add("not_like" if known else "nots", value if known else body.text)
        return True
    if key in _LIST_KEYS:
        values = value.split(",") if key in ("m", "modality") else [value]
        for one in values:
            got.add(_LIST_KEYS[key], one)
    elif key in _TEXT_KEYS:
        if key == "not":
            got.add("nots", value)
        elif key == "match":  # refused here, so the message names what was typed
            got.single[key] = Match.parse(value).value
        else:
            got.single[key] = value
    else:
        got.single[_NUMBER_KEYS[key]] = _number(key, value)
    return True


_EXAMPLES = {"like": "~/pics/dog.jpg", "m": "video", "modality": "video", "path": "*.jpg"}
_EXAMPLES |= {"after": "2024-05-01", "before": "2024-05-01", "not": "cat", "match": "both"}


def _number(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{key}:{value} is not a number", f"e.g. {key}:10") from None


def _plain(token: _Token, got: _Collected) -> None:
    if token.quoted:
        _end_run(got)
        got.texts.append(token.text)
        return
    got.run.append(token.text)
    if parse_weighted(token.text)[0] != token.text:
        _end_run(got)  # a weight closes the run it weighs


def _end_run(got: _Collected) -> None:
    """The words typed so far become a text, or an example when they name a file."""
    if not got.run:
        return
    text = " ".join(got.run)
    got.run.clear()
    body = text if Path(text).expanduser().exists() else parse_weighted(text)[0]
    as_path = Path(body).expanduser()
    if as_path.is_file() or (looks_like_path(body) and as_path.exists()):
        got.add("like", text)
    elif looks_like_path(body):
        raise UsageError(
            f"no such file: {body}",
            f'check the path; to search for these words as a text, put them in quotes: "{text}"',
        )
    else:
        got.texts.append(text)


def _tokens(box: str) -> list[_Token]:
    """Words split at white space; a quote opens only at a word's start or after `:` or `-`
    (so "dog's" keeps its apostrophe); an unclosed quote runs to the end."""
    tokens: list[_Token] = []
    i, n = 0, len(box)
    while i < n:
        if box[i].isspace():
            i += 1
            continue
        word, bare = "", -1
        while i < n and not box[i].isspace():
            if box[i] in _QUOTES and (word == "" or word.endswith(":") or word == "-"):
                end = box.find(box[i], i + 1)
                end = n if end < 0 else end
                bare = len(word) if bare < 0 else bare
                word += box[i + 1 : end]
                i = end + 1
            else:
                word += box[i]
                i += 1
        tokens.append(_Token(word, len(word) if bare < 0 else bare, bare >= 0))
    return tokens


def _quote(text: str, *, always: bool = False) -> str:
    needs = always or not text or any(c.isspace() for c in text) or text[0] in _QUOTES
    if not needs:
        return text
    quote = '"' if '"' not in text else "'"
    return f"{quote}{text}{quote}"


def _quote_text(text: str) -> str:
    """A text quoted unless it is one plain word (a quoted text is never a path or a filter)."""
    plain = re.fullmatch(r"[\w.]+", text) is not None and not looks_like_path(text)
    return text if plain else _quote(text, always=True)
