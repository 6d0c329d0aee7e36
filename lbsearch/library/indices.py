"""The vector indices kept equal to the catalog: load, repair, rebuild, follow, save, reload.

The catalog bumps a per-modality generation in every transaction that changes the modality's
segments. An index file whose trailer names the catalog's library id, generation and segment
count is used as it is. Anything else (a crash between a catalog commit and the index save, a
missing or damaged file, a reader that opened the file before a writer's next batch) is found
when the index is loaded: the ids are compared with the catalog's, extra ids removed and missing
vectors added from the catalog's stored vectors; a file from another catalog, of another
dimension or unreadable is rebuilt from the catalog. Nothing is re-embedded.

Each index has two columns more than the vectors: the segment's hubness biases for text queries
and for example-file queries, computed from its stored vector and the modality's reference bank
(`lbsearch.vectors.bias`) or the library's sample of its own segments
(`lbsearch.vectors.filesample`). An index built with another bank or sample than the library's
is rebuilt the same way, from the stored vectors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..catalog.records import DeltaKind, ModalityDelta
from ..types import Modality
from ..vectors.bias import Bank
from ..vectors.filesample import FileSample
from ..vectors.index import VectorIndex
from ..vectors.kinds import BiasKind
from ..vectors.plan import IndexKind, IndexPlan, index_dim, plan_index, plan_still_fits
from ..vectors.store import IndexMeta, VectorStore
from .events import IndexAction, IndexCheck, IndexEvent, IndexInfo
from .references import References

if TYPE_CHECKING:
    from ..catalog.store import Catalog

_ADD_CHUNK = 8192
_NULL_SAMPLE = 2048  # segments the null moments are measured on
_FILE_SAMPLE = 512  # segments an example-file query's null is measured on


class LibraryIndices:
    """Each modality's index, consistent with the catalog as of when it was (re)loaded.

    `events` says what loading each index took. Loading and `refresh` build an index aside and
    swap it in whole, so searches from other threads never see one half-repaired.
    """

    def __init__(self, catalog: Catalog, store: VectorStore) -> None:
        self.catalog = catalog
        self.store = store
        self.events: dict[Modality, IndexEvent] = {}
        self._lock = threading.RLock()  # one loader at a time; searches do not take it
        self.references = References(store.directory)
        self._samples: dict[Modality, tuple[VectorIndex | None, np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ the bias column

    def _stored_rows(
        self, modality: Modality, width: int, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The stored ones of segments `ids`, and their rows as an index of `width` columns
        holds them."""
        stored = self.catalog.vectors_by_ids(modality, ids)
        return stored.ids, self.references.rows(modality, stored.ids, stored.vectors, width)

    def use_bank(self, modality: Modality, bank: Bank, *, persist: bool) -> None:
        """Make `bank` the modality's (see `use_references`)."""
        self.use_references({modality: bank}, None, persist=persist)

    def use_file_sample(self, sample: FileSample, *, persist: bool) -> None:
        """Make `sample` the library's, for every modality's file-bias column (see
        `use_references`)."""
        self.use_references({}, sample, persist=persist)

    def use_references(
        self,
        banks: dict[Modality, Bank],
        sample: FileSample | None,
        *,
        persist: bool,
        drop_sample: bool = False,
    ) -> None:
        """Make `banks` (per modality) and `sample` (when given; none with `drop_sample`) the
        library's, then rebuild each index built with others from stored vectors, once for both
        columns. A writer (`persist`) saves them before the indices rebuilt with them, so a
        crash in between leaves indices that name the old ones and are rebuilt at the next
        open; a reader only uses them in memory."""
        with self._lock:
            self.references.install(banks, sample, persist=persist, drop_sample=drop_sample)
            if sample is not None or drop_sample:
                self._samples.clear()
            for modality in self.store.loaded_modalities():
                index = self.store.loaded(modality)
                if index is not None and self._stale(modality, index):
                    self._install(modality, self._rebuild(modality, "a reference bank changed"))
            if persist:  # an index file built with other references is rebuilt now
                for modality in sorted(self.catalog.modality_states()):
                    self.index(modality)
        if persist:
            self.save(self.store.loaded_modalities())

    def _stale(self, modality: Modality, index: VectorIndex) -> bool:
        """Whether `index` was built with another bank or sample than the library's now."""
        dim = index.dim - index_dim(index.plan, 0)
        return (index.bias, index.file_bias) != (
            self.references.fingerprint(modality, dim),
            self.references.file_fingerprint(dim),
        )

    def biases(
        self, modality: Modality, ids: np.ndarray, kind: BiasKind = BiasKind.TEXT
    ) -> np.ndarray:
        """A bias column of segments `ids` as the loaded index holds it (0 for one gone)."""
        index = self.index(modality)
        ids = np.asarray(ids, dtype=np.int64)
        if index is None or not len(ids):
            return np.zeros(len(ids), dtype=np.float32)
        column = index.dim - index_dim(index.plan, 0) + kind.column
        rows = index.rows(ids)
        if rows is not None:
            return rows[:, column].astype(np.float32)
        stored = self.catalog.vectors_by_ids(modality, ids)
        rows = self.references.rows(modality, stored.ids, stored.vectors, index.dim, (kind,))
        found = dict(zip(stored.ids.tolist(), rows[:, column].tolist(), strict=True))
        return np.array([found.get(int(i), 0.0) for i in ids], dtype=np.float32)

    def sample(
        self, modality: Modality, kind: BiasKind = BiasKind.FILE
    ) -> tuple[np.ndarray, np.ndarray]:
        """A random sample of the modality's stored vectors and their biases of `kind` (kept
        while the index is): the null of an example-file query is its own scores against it."""
        index = self.index(modality)
        cached = self._samples.get(modality)
        if cached is None or cached[0] is not index:
            chunk = self.catalog.sample_vectors(modality, _FILE_SAMPLE)
            width = chunk.vectors.shape[1] + 2
            biases = self.references.rows(modality, chunk.ids, chunk.vectors, width)[:, -2:]
            cached = self._samples[modality] = (index, chunk.vectors, biases)
        return cached[1], cached[2][:, kind.column]

    def null(self, modality: Modality) -> dict[str, list[float]] | None:
        """The loaded index's null moments ("text": bank queries, "file": the library's own
        segments as queries), measured on a sample of stored vectors when not known yet."""
        index = self.index(modality)
        if index is None:
            return None
        if index.null is None:
            index.null = self._measure_null(modality)
        return index.null

    def _measure_null(self, modality: Modality) -> dict[str, list[float]]:
        chunk = self.catalog.sample_vectors(modality, _NULL_SAMPLE)
        return self.references.null(modality, chunk.ids, chunk.vectors)

    def index(self, modality: Modality) -> VectorIndex | None:
        """The modality's index (None: no vectors yet), loaded on first use."""
        if not self.store.is_loaded(modality):
            with self._lock:
                if not self.store.is_loaded(modality):
                    self._install(modality, self._load(modality))
        return self.store.loaded(modality)

    def _install(self, modality: Modality, index: VectorIndex | None) -> None:
        event = self.events.get(modality)
        changed = event is not None and event.action is not IndexAction.FRESH
        self.store.put(modality, index, changed=changed)

    def _load(self, modality: Modality, mapped: bool | None = None) -> VectorIndex | None:
        self.events.pop(modality, None)  # replaced by what this load takes
        state = self.catalog.modality_state(modality)
        if state is None or not state.dim:
            return None
        found = self.store.read(modality, mapped)
        if isinstance(found, str):
            return self._rebuild(modality, found)
        index, meta = found
        if meta.library_id != self.catalog.library_id or meta.dim != state.dim:
            return self._rebuild(modality, "the file belongs to another catalog or model")
        if meta.bias != self.references.fingerprint(modality, state.dim):
            return self._rebuild(modality, "the file was built with another reference bank")
        if meta.file_bias != self.references.file_fingerprint(state.dim):
            return self._rebuild(modality, "the file was built with another library sample")
        index.bias, index.file_bias, index.null = meta.bias, meta.file_bias, meta.null
        wanted = (state.generation, state.segment_count, state.segment_count)
        if (meta.generation, meta.count, index.ntotal) == wanted:
            index.generation = state.generation
            self.events[modality] = IndexEvent(modality, IndexAction.FRESH)
            return index
        if index.mapped:  # to be repaired: read a copy in memory, which can change
            return self._load(modality, mapped=False)
        return self._repair(modality, index)

    def _repair(self, modality: Modality, index: VectorIndex) -> VectorIndex | None:
        snapshot = self.catalog.segment_ids(modality)
        have = index.ids()
        if len(np.unique(have)) != len(have):
            return self._rebuild(modality, "the index holds duplicate ids")
        extra = np.setdiff1d(have, snapshot.ids, assume_unique=True)
        missing = np.setdiff1d(snapshot.ids, have, assume_unique=True)
        index.remove(extra)
        for start in range(0, len(missing), _ADD_CHUNK):
            chunk = self.catalog.vectors_by_ids(modality, missing[start : start + _ADD_CHUNK])
            index.add(
                chunk.ids, self.references.rows(modality, chunk.ids, chunk.vectors, index.dim)
            )
        index.generation = snapshot.generation
        index.null = None if len(missing) or len(extra) else index.null
        self.events[modality] = IndexEvent(
            modality, IndexAction.REPAIRED, added=len(missing), removed=len(extra)
        )
        return index

    def _rebuild(self, modality: Modality, reason: str) -> VectorIndex | None:
        """A new index from the catalog's stored vectors, streamed in chunks (no re-embedding)."""
        state = self.catalog.modality_state(modality)
        if state is None or not state.dim:
            return None
        plan = plan_index(state.segment_count, state.dim, self.store.config)
        training = None
        if plan.kind is not IndexKind.FLAT:
            size = plan.training_size(state.segment_count)
            sample = self.catalog.sample_vectors(modality, size)
            training = self.references.rows(
                modality, sample.ids, sample.vectors, index_dim(plan, state.dim)
            )
        index = VectorIndex.new(plan, index_dim(plan, state.dim), training)
        index.bias = self.references.fingerprint(modality, state.dim)
        index.file_bias = self.references.file_fingerprint(state.dim)
        for chunk in self.catalog.stream_vectors(modality, _ADD_CHUNK):
            index.add(
                chunk.ids, self.references.rows(modality, chunk.ids, chunk.vectors, index.dim)
            )
            index.generation = chunk.generation
        self.events[modality] = IndexEvent(modality, IndexAction.REBUILT, reason=reason)
        return index

    def rebuild(self, modality: Modality, reason: str) -> VectorIndex | None:
        with self._lock:
            self._install(modality, self._rebuild(modality, reason))
        return self.store.loaded(modality)

    def refresh(self) -> dict[Modality, IndexEvent]:
        """Reload every loaded index whose modality changed in the catalog since it was loaded
        (a writer committed since). Returns what reloading took, per modality reloaded."""
        states = self.catalog.modality_states(counts=False)  # cheap: once per request
        reloaded: dict[Modality, IndexEvent] = {}
        with self._lock:
            for modality in self.store.loaded_modalities():
                index = self.store.loaded(modality)
                state = states.get(modality)
                now = state.generation if state is not None and state.dim else None
                if (index.generation if index is not None else None) == now:
                    continue
                self.references.forget(modality)  # a writer may have saved others
                fresh = self._load(modality)
                if index is not None and fresh is not None:  # keep the GPU copy, if any
                    fresh.adopt_gpu(index, partial(self._stored_rows, modality, fresh.dim))
                self._install(modality, fresh)
                if modality in self.events:
                    reloaded[modality] = self.events[modality]
        return reloaded

    # -------------------------------------------------------------------------- changes

    def follow(self, deltas: Iterable[ModalityDelta]) -> None:
        """Mirror committed catalog changes in the loaded indices (the writer's, in place)."""
        for delta in deltas:
            self._follow(delta)

    def _follow(self, delta: ModalityDelta) -> None:
        modality = delta.modality
        if not self.store.is_loaded(modality):
            self.index(modality)  # loaded after the commit: already includes the change
            return
        index = self.store.loaded(modality)
        if delta.kind is DeltaKind.MODEL:  # every segment is gone, the dimension may differ
            fresh = None
            if delta.dim:
                plan = IndexPlan(IndexKind.FLAT)
                fresh = VectorIndex.new(plan, index_dim(plan, delta.dim))
                fresh.generation = delta.generation
                fresh.bias = self.references.fingerprint(modality, delta.dim)
                fresh.file_bias = self.references.file_fingerprint(delta.dim)
            self.store.put(modality, fresh, changed=True)
        elif index is None:
            self._install(modality, self._load(modality))
        elif index.generation == delta.generation_before:
            index.remove(delta.removed_ids)
            if len(delta.added_ids):
                rows = self.references.rows(
                    modality, delta.added_ids, delta.added_vectors, index.dim
                )
                index.add(delta.added_ids, rows)
            index.generation = delta.generation
            index.null = None  # measured again when asked, or at the next save
            self.store.dirty.add(modality)
        elif index.generation < delta.generation:
            self._repair(modality, index)
            self.store.dirty.add(modality)

    # --------------------------------------------------------------------------- saving

    def save(self, modalities: Iterable[Modality] | None = None) -> list[Modality]:
        """Write changed indices atomically; re-plan (rebuild) those whose size outgrew them."""
        wanted = self.store.dirty if modalities is None else set(modalities) & self.store.dirty
        saved = []
        for modality in sorted(wanted):
            index = self.store.loaded(modality)
            config = self.store.config
            if index is not None and not plan_still_fits(
                index.plan, index.ntotal, index.dim, config
            ):
                index = self.rebuild(modality, "the collection size calls for another kind")
            if index is not None:
                self.store.write(modality, index, self._meta(modality, index))
            else:
                self.store.delete(modality)
            saved.append(modality)
        return saved

    def _meta(self, modality: Modality, index: VectorIndex) -> IndexMeta:
        state = self.catalog.modality_state(modality)
        return IndexMeta(
            library_id=self.catalog.library_id,
            modality=modality.value,
            generation=index.generation,
            count=index.ntotal,
            dim=index.dim - index_dim(index.plan, 0),
            kind=index.plan.kind.value,
            nlist=index.plan.nlist,
            pq_m=index.plan.pq_m,
            model_id=state.model_id if state else "",
            saved_at=time.time(),
            bias=index.bias,
            null=self.null(modality) if index.ntotal else None,
            file_bias=index.file_bias,
        )

    def recover(self) -> dict[Modality, IndexEvent]:
        """At a writer's open: bring every modality's file in line with the catalog.

        Up-to-date files are only read for their trailer; the others are repaired or rebuilt
        and saved. Returns what was done per modality that needed it.
        """
        done = {}
        for info in self.info():
            if not info.up_to_date:
                with self._lock:
                    self._install(info.modality, self._load(info.modality))
                self.store.dirty.add(info.modality)
                self.save([info.modality])
                if info.modality in self.events:
                    done[info.modality] = self.events[info.modality]
        return done

    # -------------------------------------------------------------------------- reading

    def info(self) -> tuple[IndexInfo, ...]:
        """Per registered modality: the index file and whether it matches the catalog."""
        out = []
        for modality, state in sorted(self.catalog.modality_states().items()):
            path = self.store.path(modality)
            meta = self.store.read_meta(modality)
            up_to_date = meta is not None and (
                meta.library_id,
                meta.generation,
                meta.count,
                meta.dim,
                meta.bias,
                meta.file_bias,
            ) == (
                self.catalog.library_id,
                state.generation,
                state.segment_count,
                state.dim,
                self.references.saved_fingerprint(modality, state.dim),
                self.references.saved_file_fingerprint(state.dim),
            )
            if meta is None and not state.segment_count:
                up_to_date = True  # nothing to index yet; no file needed
            size = path.stat().st_size if path.exists() else 0
            kind, count = (meta.kind, meta.count) if meta else (None, None)
            bias = meta.bias if meta else ""
            out.append(
                IndexInfo(modality, path, path.exists(), size, kind, count, up_to_date, bias)
            )
        return tuple(out)

    def check(self, modality: Modality) -> IndexCheck:
        """Compare every id of the loaded index with the catalog's (a full, slower check)."""
        snapshot = self.catalog.segment_ids(modality)
        index = self.index(modality)
        have = index.ids() if index is not None else np.zeros(0, dtype=np.int64)
        unique = np.unique(have)
        return IndexCheck(
            modality=modality,
            catalog_count=len(snapshot.ids),
            index_count=len(have),
            missing=len(np.setdiff1d(snapshot.ids, unique, assume_unique=True)),
            extra=len(np.setdiff1d(unique, snapshot.ids, assume_unique=True)),
            duplicates=len(have) - len(unique),
        )
