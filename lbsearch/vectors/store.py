"""The vector index files of one library folder, and the indices loaded from them.

File format: `vectors/<modality>.faiss` is a FAISS index followed by a JSON trailer, saved with
one atomic `os.replace` (see `.fileformat`, whose names are re-exported here).

This module knows nothing of the catalog. Which vectors an index must hold, and what to do when
a file is behind, damaged or foreign, is decided by the library (`lbsearch.library.indices`),
the one place where the catalog and the indices meet.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    SearchResult,
    VectorIndex,
    VectorIndexError,
    faiss_module,
    gpu_available,
    gpu_number,
    unique_ids,
)
from .plan import IndexKind, check_config, default_nprobe

__all__ = [
    "FORMAT",
    "MAGIC",
    "IndexMeta",
    "VectorStore",
    "clean_temporary_files",
    "read_index_file",
    "read_index_meta",
    "rerank",
    "write_index_file",
]


class VectorStore:
    """Per modality: the index file and the index in memory (None: the modality has no vectors).

    Searches may run from several threads at once: `put` swaps an index in with one assignment,
    so a search keeps the index it started with. Changing an index in place (add, remove) is for
    the writer, which does not search at the same time.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        config: IndexConfig | None = None,
        *,
        encoder_device: str = "",
        mapped: bool = False,
    ) -> None:
        """`encoder_device`: [runtime] device; "cuda:N" puts the GPU copies on GPU N too, unless
        [index] device names its own ("gpu:N"). `mapped`: read index files memory-mapped
        (read-only: for a process that only searches, and whose caller reads a writable copy
        before changing one)."""
        self.directory = Path(directory)
        self.mapped = mapped
        self.config = config or IndexConfig()
        check_config(self.config)
        self.gpu = gpu_number(self.config.device if ":" in self.config.device else encoder_device)
        self.dirty: set[Modality] = set()  # changed in memory since the file was written
        self._loaded: dict[Modality, VectorIndex | None] = {}

    def path(self, modality: Modality) -> Path:
        return self.directory / f"{modality.value}.faiss"

    # ------------------------------------------------------------------------ in memory

    def is_loaded(self, modality: Modality) -> bool:
        return modality in self._loaded

    def loaded(self, modality: Modality) -> VectorIndex | None:
        return self._loaded.get(modality)

    def loaded_modalities(self) -> list[Modality]:
        return sorted(self._loaded)

    def put(self, modality: Modality, index: VectorIndex | None, *, changed: bool) -> None:
        """Use `index` for the modality from now on; `changed`: it differs from the file."""
        self._loaded[modality] = index
        if changed:
            self.dirty.add(modality)

    # ---------------------------------------------------------------------------- files

    def read(
        self, modality: Modality, mapped: bool | None = None
    ) -> tuple[VectorIndex, IndexMeta] | str:
        """The modality's index file and its trailer, or why it cannot be used; memory-mapped
        (read-only) when `mapped`, by default when the store was opened so."""
        faiss_module(self.config)
        return read_index_file(self.path(modality), self.mapped if mapped is None else mapped)

    def read_meta(self, modality: Modality) -> IndexMeta | None:
        return read_index_meta(self.path(modality))

    def write(self, modality: Modality, index: VectorIndex, meta: IndexMeta) -> None:
        """Save atomically (a crash leaves the old file or the new one) and mark it clean."""
        self.directory.mkdir(parents=True, exist_ok=True)
        write_index_file(self.path(modality), index, meta)
        self.dirty.discard(modality)

    def delete(self, modality: Modality) -> None:
        self.path(modality).unlink(missing_ok=True)
        self.dirty.discard(modality)

    def file_bytes(self) -> int:
        """Bytes of every index file on disk."""
        found = self.directory.glob("*.faiss")
        return sum(p.stat().st_size for p in found if p.is_file())

    def clean_temporary_files(self) -> int:
        """Remove what a process killed while saving left behind (writer lock held)."""
        return clean_temporary_files(self.directory)

    # ---------------------------------------------------------------------------- search

    def search(
        self,
        modality: Modality,
        index: VectorIndex,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
    ) -> SearchResult:
        """Top-k segment ids and scores of `index` per query row; `allowed`: the ids results
        may come from. A compressed (IVF-PQ) index answers k x refine_factor candidates with
        approximate scores: `rerank` them with the stored vectors."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[1] != index.dim:
            raise VectorIndexError(
                f"{self.path(modality)}: query vectors of shape {tuple(queries.shape)} do not "
                f"fit the {modality} index ({index.dim} dimensions)",
                "encode queries with the text tower of the model the library was indexed with "
                "(`lbsearch status` lists the models)",
            )
        if allowed is not None:
            allowed = unique_ids(allowed)
        wide = k * self.config.refine_factor if index.plan.kind is IndexKind.IVF_PQ else k
        nprobe = default_nprobe(index.plan, self.config)
        return index.search(queries, wide, allowed=allowed, nprobe=nprobe, device=self._device())

    def _device(self) -> str:
        if self.config.device == "cpu":
            return "cpu"
        if gpu_available():
            return f"gpu:{self.gpu}"
        if self.config.device != "auto":
            raise VectorIndexError(
                "index.device is 'gpu' but faiss sees no GPU",
                "install a CUDA build of faiss in place of faiss-cpu (README: FAISS on the GPU)"
                ' or set index.device = "auto"',
            )
        return "cpu"


def rerank(
    queries: np.ndarray,
    candidates: SearchResult,
    stored_ids: np.ndarray,
    stored_vectors: np.ndarray,
    k: int,
) -> SearchResult:
    """The best k candidates by exact inner product with their stored vectors (sorted ids);
    candidates whose vector is not stored any more drop out."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if not len(stored_ids):
        return SearchResult.empty(len(queries), k)
    exact = queries @ stored_vectors.T  # (nq, found)
    pos = np.searchsorted(stored_ids, candidates.ids).clip(0, len(stored_ids) - 1)
    valid = (candidates.ids >= 0) & (stored_ids[pos] == candidates.ids)
    scores = np.where(valid, np.take_along_axis(exact, pos, axis=1), -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    top_ids = np.where(np.isfinite(top_scores), np.take_along_axis(candidates.ids, order, 1), -1)
    result = SearchResult(top_ids.astype(np.int64), top_scores)
    if result.ids.shape[1] < k:
        pad = SearchResult.empty(len(queries), k - result.ids.shape[1])
        return SearchResult(
            np.hstack([result.ids, pad.ids]), np.hstack([result.scores, pad.scores])
        )
    return result
