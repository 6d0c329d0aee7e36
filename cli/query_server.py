"""`lbsearch query` asks a running `lbsearch serve` on the same library over a local socket.

A served library has `serve.sock` in its folder (cli/serve/local_socket.py): a Unix domain
socket, owner-only, that the server answers from its warm engine. The exchange is JSON lines:

    client -> {"v": 1, "query": {...}, "settings": DIGEST, "runtime": [backend, device, dtype]}
    server -> {"accepted": true}                  at once (or {"declined": why})
    server -> {"hits": [...], "rows": [...]}      the search (or {"no_match": why})

`query` is the core `Query` the client parsed itself (dates already in Unix seconds, path globs
already absolute), so the server reads no client time zone, folder or file. `rows` are the hits
as `query --json` prints them, made by the same function on the same hits; `hits` carry every
field at full precision, for the table, --paths and --cut. Anything but a complete answer
(no socket, nothing accepting within 100 ms, a decline, a slow or broken reply) returns None
and the caller searches locally, so the output never depends on whether a server runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lbsearch.config import Config
    from lbsearch.search import Hit, Query

SOCKET_NAME = "serve.sock"
VERSION = 1
ACCEPT_TIMEOUT_S = 0.1  # connect + the server's acknowledgement: past it, search locally
ANSWER_TIMEOUT_S = 10.0  # the search itself, once accepted (a warm one takes milliseconds)
MAX_REQUEST_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 64 * 1024 * 1024
NO_SERVER_ENV = "LBSEARCH_NO_SERVER"

Runtime = tuple[str | None, str | None, str | None]  # --backend, --device, --dtype as given


@dataclass(frozen=True)
class Answer:
    """A server's complete answer: the hits, their --json rows, or why nothing matched."""

    hits: list[Hit]
    rows: list[dict[str, Any]]
    no_match: str | None = None


def socket_path(root: Path) -> Path:
    return root / SOCKET_NAME


def settings_digest(config: Config) -> str:
    """What of the settings decides a text search's answer: a server with other settings
    (another checkpoint, relevance or index setting) would answer differently, so it declines."""
    wanted = (config.models, config.runtime, config.index, config.relevance)
    return hashlib.sha256(repr(wanted).encode("utf-8")).hexdigest()


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end (Linux SO_PEERCRED); None where unknown."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


class Lines:
    """Newline-ended lines read from a socket, each bounded in size and time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def read(self, limit: int, deadline: float) -> bytes | None:
        """The next line (without its newline) if it is at most `limit` bytes and complete
        before `deadline` (time.monotonic); None if longer, late, or the peer hangs up first."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or len(self.buffer) > limit:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except OSError:  # time-out or reset
                return None
            if not chunk:
                return None
            self.buffer += chunk
        end = self.buffer.index(b"\n")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line if len(line) <= limit else None


# ------------------------------------------------------------------------------ the client


def wanted(no_server: bool, query: Query) -> bool:
    """Ask a server unless told not to; example files are searched here (a server never opens
    a file a client names, as its web API does not)."""
    if no_server or os.environ.get(NO_SERVER_ENV, "") not in ("", "0"):
        return False
    return not query.examples and hasattr(socket, "AF_UNIX")


def ask_server(root: Path, config: Config, query: Query, runtime: Runtime) -> Answer | None:
    """The answer of the `lbsearch serve` running on the library at `root`, or None."""
    path = socket_path(root)
    if not _our_socket(path):
        return None
    request = {
        "v": VERSION,
        "query": query_to_wire(query),
        "settings": settings_digest(config),
        "runtime": list(runtime),
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            return _exchange(sock, path, request)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # odd: search here
        return None


def _our_socket(path: Path) -> bool:
    """A socket of ours at `path`, not a link (connect would follow one)."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid()


def _exchange(sock: socket.socket, path: Path, request: dict[str, Any]) -> Answer | None:
    deadline = time.monotonic() + ACCEPT_TIMEOUT_S
    sock.settimeout(ACCEPT_TIMEOUT_S)
    sock.connect(str(path))
    uid = peer_uid(sock)
    if uid is not None and uid != os.getuid():  # someone else's process: not to be trusted
        return None
    sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
    lines = Lines(sock)
    first = lines.read(1024, deadline)
    if first is None or not json.loads(first).get("accepted"):
        return None
    body = lines.read(MAX_ANSWER_BYTES, time.monotonic() + ANSWER_TIMEOUT_S)
    return None if body is None else answer_from_wire(json.loads(body))


# ------------------------------------------------------------------------ the wire format


def query_to_wire(query: Query) -> dict[str, Any]:
    from lbsearch.search.query import normalise_glob

    return {
        "terms": [[t.text, t.weight] for t in query.terms],
        "modalities": [m.value for m in query.modalities],
        "path_globs": [normalise_glob(g) for g in query.path_globs],  # here: ~ and ./ are ours
        "after": query.after,
        "before": query.before,
        "min_duration_s": query.min_duration_s,
        "max_duration_s": query.max_duration_s,
        "limit": query.limit,
        "min_score": query.min_score,
        "order": query.order,
        "min_relevance": query.min_relevance,
        "cut": query.cut,
        "match": query.match.value,
        "moments": query.moments,
    }


def query_from_wire(data: Any) -> Query:
    """The `Query` a client sent; ValueError for anything malformed (types are checked, since
    the sender is only trusted to be the same user, not to be well-behaved)."""
    from lbsearch.search import Query, Term, check_query
    from lbsearch.search.match import Match
    from lbsearch.types import Modality

    if not isinstance(data, dict) or set(data) != set(_QUERY_TYPES):
        raise ValueError("unexpected query fields")
    for name, kinds in _QUERY_TYPES.items():
        if not isinstance(data[name], kinds) or isinstance(data[name], bool) != (kinds is bool):
            raise ValueError(f"{name} has the wrong type")
    terms = tuple(Term(text=_text(t), weight=_number(w)) for t, w in _pairs(data["terms"]))
    numbers = {n: _optional(data[n]) for n in _OPTIONAL_NUMBERS}
    query = Query(
        terms=terms,
        modalities=tuple(Modality(_text(m)) for m in data["modalities"]),
        path_globs=tuple(_text(g) for g in data["path_globs"]),
        limit=data["limit"],
        order=data["order"],
        cut=data["cut"],
        match=Match(data["match"]),
        moments=data["moments"],
        **numbers,
    )
    check_query(query)
    return query


_OPTIONAL_NUMBERS = (
    "after",
    "before",
    "min_duration_s",
    "max_duration_s",
    "min_score",
    "min_relevance",
)
_QUERY_TYPES: dict[str, Any] = {
    "terms": list,
    "modalities": list,
    "path_globs": list,
    "limit": int,
    "order": str,
    "cut": bool,
    "match": str,
    "moments": int,
    **dict.fromkeys(_OPTIONAL_NUMBERS, (int, float, type(None))),
}


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    if not all(isinstance(i, list) and len(i) == 2 for i in items):
        raise ValueError("a term is [text, weight]")
    return [(i[0], i[1]) for i in items]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a text was expected")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a number was expected")
    return float(value)


def _optional(value: Any) -> float | None:
    return None if value is None else _number(value)


def hit_to_wire(hit: Hit) -> dict[str, Any]:
    out = {f.name: _plain(getattr(hit, f.name)) for f in fields(hit) if f.name != "moments"}
    out["modality"] = hit.modality.value
    out["moments"] = [{f.name: _plain(getattr(m, f.name)) for f in fields(m)} for m in hit.moments]
    return out


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (JSON keeps a float's every digit)."""
    return value.item() if hasattr(value, "item") else value


def answer_to_wire(hits: list[Hit], no_match: str | None) -> dict[str, Any]:
    from lbsearch.search.shell import hit_json

    if no_match is not None:
        return {"no_match": no_match}
    return {
        "hits": [hit_to_wire(hit) for hit in hits],
        "rows": [hit_json(rank, hit) for rank, hit in enumerate(hits, 1)],
    }


def answer_from_wire(data: dict[str, Any]) -> Answer | None:
    from lbsearch.search import Hit
    from lbsearch.search.match import Moment
    from lbsearch.types import Modality

    if "no_match" in data:
        return Answer([], [], str(data["no_match"]))
    if "hits" not in data:
        return None
    hits = [
        Hit(
            **{k: v for k, v in h.items() if k not in ("modality", "moments")},
            modality=Modality(h["modality"]),
            moments=tuple(Moment(**m) for m in h["moments"]),
        )
        for h in data["hits"]
    ]
    rows = list(data["rows"])
    return Answer(hits, rows) if len(rows) == len(hits) else None
