"""Search by example in the service, without ever decoding in the server process.

The core engine turns an example file into a vector with `file_vector`, decoding it in-process
if it must. The service's engine (`ServerEngine`) never does: every example's vector is made
before the search and handed over by path --
- an upload: decoded in the shared decode pool (worker processes, the indexer's limits),
  embedded part by part here (a client that goes away cancels it between parts), averaged;
- a catalog file ("similar", `like_id`): verified like any served file, then its stored vectors.
An upload that is a copy of an indexed file (the same content hash) leaves that file out of the
results, as `lbsearch query --like FILE` leaves FILE out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lbsearch.catalog.hashing import hash_file
from lbsearch.errors import MediaError, UsageError
from lbsearch.search import Hit, Query, SearchEngine, check_query
from lbsearch.search.examples import unit
from lbsearch.search.ranking import Candidates
from lbsearch.types import Modality

if TYPE_CHECKING:
    from lbsearch.catalog.records import FileRecord
    from lbsearch.config import Config
    from lbsearch.embedder import Embedder
    from lbsearch.media.shared_pool import SharedPool


@dataclass(frozen=True)
class Example:
    modality: Modality
    vector: np.ndarray
    content_hash: str | None


class ServerEngine(SearchEngine):
    """The engine, with example vectors made beforehand (`examples`, keyed by path), and its
    lock held only around each index search: embedding a query's texts (the embedder takes
    its own turns) and reading the catalog run side by side for concurrent requests."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.examples: dict[str, Example] = {}
        self._examples_lock = threading.Lock()

    def search(self, query: Query) -> list[Hit]:
        check_query(query)
        return self._search(query)

    def _search_modality(self, *args: Any, **kwargs: Any) -> Candidates:
        with self._lock:
            return super()._search_modality(*args, **kwargs)

    def file_vector(self, path: Path | str) -> tuple[Modality, np.ndarray]:
        known = self.examples.get(str(path))
        if known is None:  # never decode here: only prepared examples are searched by
            raise UsageError("this example is not available", "upload it, or use Similar")
        return known.modality, known.vector

    def add_examples(self, examples: dict[str, Example]) -> None:
        with self._examples_lock:
            self.examples.update(examples)

    def drop_examples(self, paths: list[str]) -> None:
        with self._examples_lock:
            for path in paths:
                self.examples.pop(path, None)


def stored_example(library_vectors: np.ndarray | None, record: FileRecord) -> Example:
    """A catalog file's example from its stored vectors (the caller verified the file)."""
    if library_vectors is None or not len(library_vectors) or record.modality is None:
        raise UsageError(f"file {record.id} has no stored vectors", "index it again")
    vector = unit(np.mean(np.asarray(library_vectors, dtype=np.float64), axis=0))
    return Example(record.modality, vector, record.content_hash)


def upload_example(
    path: Path,
    pool: SharedPool,
    embedder: Embedder,
    config: Config,
    cancelled: threading.Event,
) -> Example:
    """Decode `path` in the shared pool, embed it part by part, average; MediaError if it cannot
    be decoded, `Cancelled` if the client went away."""
    from lbsearch.media import classify

    modality = classify(path, config.classify)
    # the client leaving sets `cancelled`: the ticket stops, and so does its worker
    ticket = pool.submit(path, embedder.media_spec(modality), cancelled)
    total, count = None, 0
    try:
        for part in ticket.parts(timeout_s=_wait_s(config)):
            if cancelled.is_set():
                raise Cancelled(str(path))
            vectors = np.asarray(embedder.embed_segments(modality, part), dtype=np.float64)
            total = vectors.sum(axis=0) if total is None else total + vectors.sum(axis=0)
            count += len(vectors)
    finally:
        ticket.cancel()  # a no-op once done; otherwise its results are dropped
    if cancelled.is_set():
        raise Cancelled(str(path))
    if total is None or not count:
        raise MediaError(str(path), "no_segments", "nothing could be decoded from the file")
    return Example(modality, unit(total / count), hash_file(path))


def _wait_s(config: Config) -> float | None:
    """How long to wait for the pool's next part: its own time limit plus the queue's turn."""
    limit = config.media.decode_timeout_s
    return None if limit <= 0 else 4 * limit


class Cancelled(Exception):
    """The client went away; nothing is answered."""
