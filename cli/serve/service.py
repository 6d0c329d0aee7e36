"""The warm state behind `lbsearch serve`: the library opened for reading, its search engine and
encoders, and a background reloader that follows an indexer's commits.

Reads never wait for an indexer: each request borrows the current `View` (library + engine) and
gives it back. A watcher thread compares the catalog's per-modality generations with the view's
every `poll_s`; when they moved (an indexer committed a batch), `Library.refresh()` reloads the
changed indices aside -- from their atomically saved files, brought up to the committed catalog
in memory -- and swaps each in whole. When a model changed, a whole fresh view is opened and
swapped in; requests in flight finish on the old one, closed when the last gives it back. A
half-written index is never seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbsearch.config import Config
from lbsearch.media.indexed import NotServable, Roots
from lbsearch.thumbnails import ThumbnailCache
from lbsearch.types import Modality

from .examples import Example, ServerEngine, stored_example

if TYPE_CHECKING:
    from lbsearch.catalog.records import FileRecord, SegmentHit
    from lbsearch.embedder import Embedder
    from lbsearch.library import Library, LibraryLocation
    from lbsearch.media.shared_pool import SharedPool
    from lbsearch.search import Hit, Query, SearchEngine

    from .base import ServeSettings

log = logging.getLogger("lbsearch.serve")

EncodersFactory = Callable[["Library"], "Embedder"]
Signature = tuple[tuple[str, int, str], ...]  # (modality, generation, model id) per modality


@dataclass(frozen=True)
class Found:
    """A search hit with the catalog ids the page needs to fetch its thumbnail and media."""

    hit: Hit
    file_id: int


@dataclass
class View:
    """One opened reader of the library and its engine; retired views close when unused."""

    library: Library
    engine: SearchEngine
    signature: Signature
    roots: Roots
    users: int = 0
    retired: bool = False
    closed: bool = field(default=False)


class SearchService:
    """Thread-safe: every method may be called from any request thread at once."""

    def __init__(
        self,
        location: LibraryLocation,
        config: Config,
        encoders_factory: EncodersFactory,
        *,
        poll_s: float = 1.0,
        limits: ServeSettings | None = None,
    ) -> None:
        self.location = location
        self.config = config
        self._factory = encoders_factory
        self._encoders: Embedder | None = None
        self._models: dict[Modality, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poll_s = poll_s
        self.limits = limits
        self._pool: SharedPool | None = None
        self._view = self._open_view()
        cache_bytes = config.serve.thumbnail_cache_mb * 1024 * 1024
        self.thumbnails = ThumbnailCache(
            self._view.library.root, config, cache_bytes, pool=lambda: self.pool
        )
        self._watcher: threading.Thread | None = None
        self.reloads = 0

    @property
    def root(self) -> Path:
        return self._view.library.root

    # --------------------------------------------------------------------- lifetime

    def start(self) -> None:
        """Start following the catalog (call once the server is up)."""
        self._watcher = threading.Thread(target=self._watch, name="lbsearch-reload", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        with self._lock:
            view = self._view
            view.retired = True
            if view.users == 0:
                self._close_view(view)

    @contextlib.contextmanager
    def view(self) -> Iterator[View]:
        """Borrow the current view for one request."""
        with self._lock:
            view = self._view
            view.users += 1
        try:
            yield view
        finally:
            with self._lock:
                view.users -= 1
                if view.retired and view.users == 0:
                    self._close_view(view)

    # ---------------------------------------------------------------------- reading

    def search(self, query: Query, examples: dict[str, Example] | None = None) -> list[Found]:
        """The query's hits; `examples`: the vectors of the example paths it names (made
        beforehand, see examples.py). A file with an upload's content is left out."""
        examples = examples or {}
        hashes = {e.content_hash for e in examples.values() if e.content_hash}
        wider = dataclasses.replace(query, limit=query.limit + len(hashes))
        with self.view() as view:
            engine = view.engine
            assert isinstance(engine, ServerEngine)
            engine.add_examples(examples)
            try:
                hits = engine.search(wider)
            finally:
                engine.drop_examples(list(examples))
            segments = view.library.segments_by_ids([h.segment_id for h in hits])
        found = [
            Found(h, segments[h.segment_id].file.id)
            for h in hits
            if h.segment_id in segments and segments[h.segment_id].file.content_hash not in hashes
        ]
        return found[: query.limit]

    def catalog_example(self, file_id: int) -> tuple[str, Example]:
        """A catalog file as an example (`like_id`): verified as served files are (404 if it
        may not be served), its stored vectors averaged. Returns (its path, the example)."""
        from lbsearch.media.indexed import open_indexed

        with self.view() as view:
            record = view.library.file_by_id(file_id)
            if record is None:
                raise NotServable(f"no file with id {file_id} in the library")
            handle, _ = open_indexed(record, view.roots)
            handle.close()
            return record.path, stored_example(view.library.stored_vectors(record), record)

    @property
    def pool(self) -> SharedPool:
        """The service's one decode pool (its processes start with the first job)."""
        from lbsearch.media.shared_pool import SharedPool

        with self._lock:
            if self._pool is None:
                jobs = self.limits.max_jobs if self.limits else 8
                self._pool = SharedPool(self.config, jobs)
            return self._pool

    def indexed_modalities(self) -> tuple[Modality, ...]:
        with self.view() as view:
            return view.engine.indexed_modalities()

    def segment(self, segment_id: int) -> SegmentHit | None:
        with self.view() as view:
            return view.library.segments_by_ids([segment_id]).get(segment_id)

    def file(self, file_id: int) -> FileRecord | None:
        with self.view() as view:
            return view.library.file_by_id(file_id)

    def roots(self) -> Roots:
        """The library's roots (real paths): the only folders whose files are served."""
        with self.view() as view:
            return view.roots

    def stats(self, failed_limit: int) -> Any:
        with self.view() as view:
            return view.library.stats(failed_limit)

    @property
    def encoders(self) -> Embedder:
        with self.view() as view:
            return view.engine.embedder

    # ---------------------------------------------------------------------- reloading

    def reload_if_changed(self) -> bool:
        """Bring the service up to what writers committed since the last look.

        Usually `Library.refresh()`: the indices of the modalities an indexer changed are
        reloaded aside and swapped in whole while searches go on. A modality that is new, or
        indexed with another model since, needs a fresh view (a new embedder, a new engine),
        swapped in the same way."""
        current = self._view
        signature = _signature(current.library)
        if signature == current.signature:
            return False
        if _models(signature) == _models(current.signature):
            current.library.refresh()
            current.signature = signature
            current.roots = _roots(current.library)
        else:
            fresh = self._open_view()
            with self._lock:
                old, self._view = self._view, fresh
                old.retired = True
                if old.users == 0:
                    self._close_view(old)
        self.reloads += 1
        log.info("reloaded the library (%s)", _describe(signature))
        return True

    def _watch(self) -> None:
        pause = self._poll_s
        while not self._stop.wait(pause):
            started = time.monotonic()
            try:
                reloaded = self.reload_if_changed()
            except Exception as error:  # keep serving the last good view; try again later
                log.warning("could not reload the library: %s", error)
                reloaded = False
            # a big library takes seconds to reload: while an indexer keeps committing, rest
            # twice as long as the last reload took, so reloading uses at most a third of a core
            took = time.monotonic() - started if reloaded else 0.0
            pause = max(self._poll_s, 2 * took)

    def _open_view(self) -> View:
        from lbsearch.library import Library

        library = Library.open(self.location, config=self.config)
        try:
            signature = _signature(library)
            engine = ServerEngine(library, self.config, self._encoders_for(library))
            for modality in engine.indexed_modalities():
                library.index_size(modality)  # load (and repair) it now, not in a request
        except BaseException:
            library.close()
            raise
        return View(library, engine, signature, _roots(library))

    def _encoders_for(self, library: Library) -> Embedder:
        """The encoders stay loaded across reloads unless a modality's model changed."""
        models = {m: s.model_id for m, s in library.modality_states().items()}
        if self._encoders is None or models != self._models:
            self._encoders = self._factory(library)
            self._models = models
        return self._encoders

    @staticmethod
    def _close_view(view: View) -> None:
        if not view.closed:
            view.closed = True
            view.library.close()


def _signature(library: Library) -> Signature:
    states = library.modality_states()
    return tuple(
        sorted((m.value, s.generation, s.model_id) for m, s in states.items() if s is not None)
    )


def _roots(library: Library) -> Roots:
    """The folders the library's files were indexed from (online or offline), links resolved."""
    return Roots.of(library.roots())


def _models(signature: Signature) -> dict[str, str]:
    return {modality: model for modality, _, model in signature}


def _describe(signature: Signature) -> str:
    return ", ".join(f"{m} generation {g}" for m, g, _ in signature) or "empty"
