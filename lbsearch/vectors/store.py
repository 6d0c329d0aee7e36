"""The library's vector indices, one file per modality, kept consistent with the catalog.

File format: `vectors/<modality>.faiss` is a FAISS index followed by a JSON trailer, saved with
one atomic `os.replace` (see `.fileformat`, whose names are re-exported here).

Consistency: the catalog bumps a per-modality generation in every transaction that changes the
modality's segments. An index whose trailer names the catalog's library id, generation and
segment count is used as it is. Anything else (a crash between a catalog commit and the index
save, a missing or damaged file) is detected when the index is opened: the segment ids are
compared with the catalog's, extra ids are removed and missing vectors added from the catalog's
stored vectors; a file from another catalog, of another dimension or unreadable is rebuilt from
the catalog. Nothing is re-embedded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import IndexConfig
from ..types import Modality
from .fileformat import (
    FORMAT,
    MAGIC,
    IndexMeta,
    clean_temporary_files,
    read_index_file,
    read_index_meta,
    write_index_file,
)
from .index import (
    IndexKind,
    IndexPlan,
    SearchResult,
    VectorIndex,
    VectorIndexError,
    check_config,
    default_nprobe,
    faiss_module,
    gpu_available,
    plan_index,
    plan_still_fits,
)

if TYPE_CHECKING:
    from ..catalog import BatchResult, ModalityChange, ModalityDelta
    from ..catalog.store import Catalog

__all__ = [
    "FORMAT",
    "MAGIC",
    "IndexCheck",
    "IndexInfo",
    "IndexMeta",
    "VectorStore",
    "clean_temporary_files",
    "read_index_file",
    "read_index_meta",
    "write_index_file",
]

_ADD_CHUNK = 8192


@dataclass(frozen=True)
class IndexInfo:
    """What `lbsearch status` shows about one modality's index, without loading it."""

    modality: Modality
    path: Path
    exists: bool
    bytes: int
    kind: str | None
    count: int | None
    up_to_date: bool


@dataclass(frozen=True)
class IndexCheck:
    """A full comparison of an index's ids with the catalog's."""

    modality: Modality
    catalog_count: int
    index_count: int
    missing: int
    extra: int
    duplicates: int

    @property
    def consistent(self) -> bool:
        return not (self.missing or self.extra or self.duplicates)


class VectorStore:
    """Loads each modality's index on first use, repairs it against the catalog, saves it
    atomically. Saving is for the process that holds the library's writer lock. Searches may run
    from several threads at once; changes (apply, save, rebuild) must not overlap them."""

    def __init__(
        self, directory: str | os.PathLike[str], catalog: Catalog, config: IndexConfig | None = None
    ) -> None:
        self.directory = Path(directory)
        self.catalog = catalog
        self.config = config or IndexConfig()
        check_config(self.config)
        self.dirty: set[Modality] = set()
        self.events: dict[
            Modality, str
        ] = {}  # what opening each index took: fresh/repaired/rebuilt
        self._loaded: dict[Modality, VectorIndex | None] = {}

    def path(self, modality: Modality) -> Path:
        return self.directory / f"{modality.value}.faiss"

    # ------------------------------------------------------------------------- loading

    def index(self, modality: Modality) -> VectorIndex | None:
        """The modality's index, consistent with the catalog as of now (None: no vectors yet)."""
        if modality not in self._loaded:
            self._loaded[modality] = self._load(modality)
        return self._loaded[modality]

    def _load(self, modality: Modality) -> VectorIndex | None:
        faiss_module(self.config)
        state = self.catalog.modality_state(modality)
        if state is None or not state.dim:
            return None
        found = read_index_file(self.path(modality))
        if isinstance(found, str):
            return self._rebuild(modality, found)
        index, meta = found
        if meta.library_id != self.catalog.library_id or meta.dim != state.dim:
            return self._rebuild(modality, "the file belongs to another catalog or model")
        fresh = (meta.generation, meta.count, index.ntotal) == (
            state.generation,
            state.segment_count,
            state.segment_count,
        )
        if fresh:
            index.generation = state.generation
            self.events[modality] = "fresh"
            return index
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
            index.add(chunk.ids, chunk.vectors)
        index.generation = snapshot.generation
        self.dirty.add(modality)
        self.events[modality] = f"repaired: {len(missing)} added, {len(extra)} removed"
        return index

    def _rebuild(self, modality: Modality, reason: str) -> VectorIndex | None:
        """A new index from the catalog's stored vectors, streamed in chunks (no re-embedding)."""
        state = self.catalog.modality_state(modality)
        if state is None or not state.dim:
            return None
        plan = plan_index(state.segment_count, state.dim, self.config)
        training = None
        if plan.kind is not IndexKind.FLAT:
            size = plan.training_size(state.segment_count)
            training = self.catalog.sample_vectors(modality, size).vectors
        index = VectorIndex.new(plan, state.dim, training)
        for chunk in self.catalog.stream_vectors(modality, _ADD_CHUNK):
            index.add(chunk.ids, chunk.vectors)
            index.generation = chunk.generation
        self.dirty.add(modality)
        self.events[modality] = f"rebuilt ({reason})"
        return index

    def rebuild(self, modality: Modality, reason: str = "asked") -> VectorIndex | None:
        self._loaded[modality] = self._rebuild(modality, reason)
        return self._loaded[modality]

    # -------------------------------------------------------------------------- changes

    def apply(self, change: BatchResult | ModalityChange) -> None:
        """Mirror a committed catalog change in the loaded indices (loading them if needed)."""
        if hasattr(change, "deltas"):
            deltas = list(change.deltas.values())
        else:
            deltas = [change.delta] if change.delta is not None else []
        for delta in deltas:
            self._apply(delta)

    def _apply(self, delta: ModalityDelta) -> None:
        modality = delta.modality
        if modality not in self._loaded:
            self.index(modality)  # opened after the commit: already includes the change
            return
        index = self._loaded[modality]
        if delta.reset:  # model changed: every segment is gone, the dimension may differ
            fresh = VectorIndex.new(IndexPlan(IndexKind.FLAT), delta.dim) if delta.dim else None
            if fresh is not None:
                fresh.generation = delta.generation
            self._loaded[modality] = fresh
            self.dirty.add(modality)
        elif index is None:
            self._loaded[modality] = self._load(modality)
        elif index.generation == delta.generation_before:
            index.remove(delta.removed_ids)
            index.add(delta.added_ids, delta.added_vectors)
            index.generation = delta.generation
            self.dirty.add(modality)
        elif index.generation < delta.generation:
            self._repair(modality, index)

    # ---------------------------------------------------------------------------- saving

    def save(self, modalities: list[Modality] | None = None) -> list[Modality]:
        """Write changed indices atomically; re-plan (rebuild) those whose size outgrew them."""
        saved = []
        for modality in sorted(self.dirty if modalities is None else set(modalities) & self.dirty):
            index = self._loaded.get(modality)
            if index is not None and not plan_still_fits(
                index.plan, index.ntotal, index.dim, self.config
            ):
                index = self.rebuild(modality, "the collection size calls for another kind")
            if index is not None:
                self._write(modality, index)
            else:
                self.path(modality).unlink(missing_ok=True)
            self.dirty.discard(modality)
            saved.append(modality)
        return saved

    def _write(self, modality: Modality, index: VectorIndex) -> None:
        state = self.catalog.modality_state(modality)
        meta = IndexMeta(
            library_id=self.catalog.library_id,
            modality=modality.value,
            generation=index.generation,
            count=index.ntotal,
            dim=index.dim,
            kind=index.plan.kind.value,
            nlist=index.plan.nlist,
            pq_m=index.plan.pq_m,
            model_id=state.model_id if state else "",
            saved_at=time.time(),
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        write_index_file(self.path(modality), index, meta)

    def recover(self) -> dict[Modality, str]:
        """At a writer's open: bring every modality's file in line with the catalog.

        Up-to-date files are only read for their trailer; the others are repaired or rebuilt
        and saved. Returns what was done per modality that needed it.
        """
        done = {}
        for info in self.info():
            if not info.up_to_date:
                self._loaded.pop(info.modality, None)
                self.index(info.modality)
                self.save([info.modality])
                done[info.modality] = self.events.get(info.modality, "saved")
        return done

    def info(self) -> tuple[IndexInfo, ...]:
        """Per registered modality: the index file and whether it matches the catalog."""
        out = []
        for modality, state in sorted(self.catalog.modality_states().items()):
            path = self.path(modality)
            meta = read_index_meta(path)
            up_to_date = meta is not None and (
                meta.library_id,
                meta.generation,
                meta.count,
                meta.dim,
            ) == (self.catalog.library_id, state.generation, state.segment_count, state.dim)
            if meta is None and not state.segment_count:
                up_to_date = True  # nothing to index yet; no file needed
            size = path.stat().st_size if path.exists() else 0
            kind, count = (meta.kind, meta.count) if meta else (None, None)
            out.append(IndexInfo(modality, path, path.exists(), size, kind, count, up_to_date))
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

    # ---------------------------------------------------------------------------- search

    def search(
        self,
        modality: Modality,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
    ) -> SearchResult:
        """Top-k segment ids and scores per query vector (rows of `queries`).

        `allowed`: segment ids the results must come from (e.g. from
        Catalog.segment_ids_matching); None searches everything.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        index = self.index(modality)
        if index is None:
            return SearchResult.empty(len(queries), max(k, 0))
        if queries.ndim != 2 or queries.shape[1] != index.dim:
            state = self.catalog.modality_state(modality)
            raise VectorIndexError(
                f"{self.path(modality)}: query vectors of shape {tuple(queries.shape)} do not "
                f"fit the {modality} index ({index.dim} dimensions, model "
                f"{state.model_id if state else '?'})",
                "encode queries with the text tower of the model the library was indexed with "
                "(`lbsearch status` lists the models)",
            )
        if allowed is not None:
            allowed = np.unique(np.asarray(allowed, dtype=np.int64))
        nprobe = default_nprobe(index.plan, self.config)
        device = self._device()
        if index.plan.kind is not IndexKind.IVF_PQ:
            return index.search(queries, k, allowed=allowed, nprobe=nprobe, device=device)
        wide = k * self.config.refine_factor
        candidates = index.search(queries, wide, allowed=allowed, nprobe=nprobe, device=device)
        return self._rerank(modality, queries, candidates, k)

    def _device(self) -> str:
        if self.config.device == "cpu":
            return "cpu"
        if gpu_available():
            return "gpu"
        if self.config.device == "gpu":
            raise VectorIndexError(
                "index.device is 'gpu' but faiss sees no GPU",
                "install faiss with CUDA (pip install 'lbsearch[gpu]') or set index.device = "
                '"auto"',
            )
        return "cpu"

    def _rerank(
        self, modality: Modality, queries: np.ndarray, candidates: SearchResult, k: int
    ) -> SearchResult:
        """Exact scores for compressed-index candidates, from the catalog's stored vectors."""
        wanted = np.unique(candidates.ids[candidates.ids >= 0])
        stored = self.catalog.vectors_by_ids(modality, wanted)
        if not len(stored.ids):
            return SearchResult.empty(len(queries), k)
        exact = queries @ stored.vectors.T  # (nq, found)
        pos = np.searchsorted(stored.ids, candidates.ids).clip(0, len(stored.ids) - 1)
        valid = (candidates.ids >= 0) & (stored.ids[pos] == candidates.ids)
        scores = np.where(valid, np.take_along_axis(exact, pos, axis=1), -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
        top_ids = np.where(
            np.isfinite(top_scores), np.take_along_axis(candidates.ids, order, 1), -1
        )
        result = SearchResult(top_ids.astype(np.int64), top_scores)
        if result.ids.shape[1] < k:
            pad = SearchResult.empty(len(queries), k - result.ids.shape[1])
            return SearchResult(
                np.hstack([result.ids, pad.ids]), np.hstack([result.scores, pad.scores])
            )
        return result
