"""One modality's FAISS index (its kind chosen by `plan`): build, add/remove, search, files.

Kinds (ids are always the catalog's segment ids):
- flat: IndexIDMap2(IndexFlatIP), exact inner product. Used up to `exact_max_segments`.
- ivf: IVF<nlist>,Flat. Approximate: only `nprobe` of the `nlist` lists are scanned; vectors are
  stored uncompressed. Supports removal natively (HNSW in FAISS does not, and builds ~20x slower
  here: 79 s for 100k 768-d vectors on 2 cores against 4 s for IVF).
- ivf_pq: IVF<nlist>,PQ<m>. Vectors compressed to m bytes; the store re-scores the best
  candidates exactly with the catalog's vectors.

faiss is imported lazily (see `faiss_module`), so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..config import IndexConfig
from ..errors import LbsearchError
from .plan import MIN_POINTS, IndexKind, IndexPlan

_state: dict[str, Any] = {"configured": False, "gpu_resources": None}
_FEW_QUERIES = 4  # below this many queries a search runs on one thread (_threads_for)


class VectorIndexError(LbsearchError):
    """A vector index cannot be used as asked (wrong dimensions, unreadable file...)."""


def faiss_module(config: IndexConfig | None = None) -> Any:
    """Import faiss once, set its thread count and the BLAS threshold.

    FAISS >= 1.14 scans with its own kernels while queries x dim < 128000 (about 166 queries at
    768-d), tuned for many cores. On 2 cores, measured on 100k 768-d vectors: 100 queries took
    3.5 s that way and 1.2 s through BLAS, 16 queries 0.59 s vs 0.35 s, while 1-8 queries were
    faster without BLAS. So the threshold is set to 3200 x threads (BLAS from about 9 queries at
    2 threads, matching the crossover FAISS measured at 20 threads). Older FAISS compares the
    query count alone (default 20) and is left as it is.
    """
    import faiss

    if not _state["configured"]:
        if config is not None and config.threads > 0:
            faiss.omp_set_num_threads(config.threads)
        if faiss.cvar.distance_compute_blas_threshold > 1000:
            threads = max(1, faiss.omp_get_max_threads())
            faiss.cvar.distance_compute_blas_threshold = min(128000, 3200 * threads)
        _state["configured"] = True
    return faiss


@dataclass(frozen=True)
class SearchResult:
    """Top-k per query: `ids` (nq, k) int64 with -1 where fewer than k exist; `scores` (nq, k)
    inner products (cosine similarity for normalised vectors), best first."""

    ids: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls, nq: int, k: int) -> SearchResult:
        ids = np.full((nq, k), -1, dtype=np.int64)
        return cls(ids, np.full((nq, k), -np.inf, dtype=np.float32))


@contextmanager
def _threads_for(queries: int) -> Iterator[None]:
    """One OpenMP thread for a few queries. FAISS splits even a single query's exact scan
    across its threads, and on a busy 2-core machine waiting for the preempted one dominated:
    one query against 10k 769-d vectors took 44 ms with 2 threads, 1.7 ms with one (the
    setting is per calling thread in OpenMP, so other threads keep theirs)."""
    faiss = faiss_module()
    threads = faiss.omp_get_max_threads()
    if queries >= _FEW_QUERIES or threads <= 1:
        yield
        return
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


StoredRows = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class VectorIndex:
    """A FAISS index whose ids are segment ids, and the catalog generation it reflects."""

    def __init__(self, index: Any, plan: IndexPlan, dim: int, generation: int = 0) -> None:
        self.index = index
        self.plan = plan
        self.dim = dim
        self.generation = generation
        self.bias = ""  # the bank fingerprint of its text-bias column (vectors.bias); "": none
        self.file_bias = ""  # the library sample's fingerprint of its file-bias column
        self.null: dict[str, list[float]] | None = None  # null moments, measured on demand
        self._gpu: Any = None  # a copy on a GPU, for unfiltered searches
        self._gpu_number = 0
        self._gpu_failed = False
        self.mapped = False  # its vectors are the file's pages, read-only (see `read`)

    @classmethod
    def new(cls, plan: IndexPlan, dim: int, training: np.ndarray | None = None) -> VectorIndex:
        faiss = faiss_module()
        if plan.kind is IndexKind.FLAT:
            return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), plan, dim)
        index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10  # measured: 10 k-means rounds lose no recall, train 2.5x faster
        index.cp.min_points_per_centroid = MIN_POINTS  # plan_index's floor: no warning below 39
        if plan.kind is IndexKind.IVF_PQ:
            index.pq.cp.niter = 10
        if training is None or len(training) < plan.nlist:
            raise VectorIndexError(
                f"{plan.factory}: needs at least {plan.nlist} training vectors",
                "this is a bug in lbsearch's index planning; please report it",
            )
        index.train(_as_matrix(training, dim))
        _with_id_map(faiss, index, plan)
        return cls(index, plan, dim)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._check_writable()
        if len(ids):
            ids64 = np.ascontiguousarray(ids, dtype=np.int64)
            matrix = _as_matrix(vectors, self.dim)
            self.index.add_with_ids(matrix, ids64)
            self._mirror(lambda gpu: gpu.add_with_ids(matrix, ids64))

    def remove(self, ids: np.ndarray) -> int:
        self._check_writable()
        if not len(ids):
            return 0
        ids64 = np.ascontiguousarray(ids, dtype=np.int64)  # alive while the selector is used
        selector = self._selector(faiss_module(), ids64)
        removed = int(self.index.remove_ids(selector))
        self._mirror(lambda gpu: gpu.remove_ids(selector))
        return removed

    def _check_writable(self) -> None:
        if self.mapped:  # the library reads a writable copy before it changes an index
            raise VectorIndexError(
                "a memory-mapped index cannot be changed", "this is a bug in lbsearch: report it"
            )

    def _selector(self, faiss: Any, ids64: np.ndarray) -> Any:
        """A selector of `ids64`, which the caller keeps alive while it is used."""
        if self.plan.kind is IndexKind.IVF:  # its id map removes only listed ids
            return faiss.IDSelectorArray(len(ids64), faiss.swig_ptr(ids64))
        return faiss.IDSelectorBatch(ids64)

    def _mirror(self, change: Callable[[Any], object]) -> None:
        """Make a change to the GPU copy as well, so that it stays (copying a large index to the
        GPU again would pause the next search). A change the GPU index cannot take (faiss's GPU
        flat indices cannot remove ids) drops the copy: it is made again when next searched."""
        if self._gpu is None:
            return
        try:
            change(self._gpu)
        except Exception:
            self._gpu = None

    def adopt_gpu(self, previous: VectorIndex, rows: StoredRows) -> None:
        """Take over `previous`'s GPU copy when this index is a reload of it (after a writer's
        commit), bringing the copy to this index's ids; `rows` gives the stored ids of those
        asked and their rows as this index holds them. Segment ids are never reused, so the ids
        alone say what changed. An index of another kind, width or bias gets no copy until its
        first search, and so does one whose changes cannot be mirrored."""
        gpu, previous._gpu = previous._gpu, None
        shape = (previous.plan, previous.dim, previous.bias, previous.file_bias)
        same = shape == (self.plan, self.dim, self.bias, self.file_bias)
        if gpu is None or not same or self._gpu is not None:
            return
        before, now = previous.ids(), self.ids()
        self._gpu = gpu
        gone, new = np.setdiff1d(before, now), np.setdiff1d(now, before)
        if len(gone):
            gone64 = np.ascontiguousarray(gone, dtype=np.int64)  # kept alive for the selector
            selector = self._selector(faiss_module(), gone64)
            self._mirror(lambda copy: copy.remove_ids(selector))
        if len(new) and self._gpu is not None:
            try:
                ids, matrix = rows(new)
            except LbsearchError:
                self._gpu = None
                return
            if not np.array_equal(np.sort(ids), new):  # a row gone since: copy afresh later
                self._gpu = None
                return
            matrix = _as_matrix(matrix, self.dim)
            self._mirror(lambda copy: copy.add_with_ids(matrix, ids.astype(np.int64)))

    @property
    def on_gpu(self) -> bool:
        """Whether a GPU copy is held now (tests, status)."""
        return self._gpu is not None

    def rows(self, ids: np.ndarray) -> np.ndarray | None:
        """The stored rows of `ids`, in one call (flat and IVF indices keep them exactly;
        None for a compressed index, or when an id is missing)."""
        if self.plan.kind is IndexKind.IVF_PQ:
            return None
        ids64 = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids64):
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            return np.asarray(self.index.reconstruct_batch(ids64), dtype=np.float32)
        except RuntimeError:  # an id gone since it was found
            return None

    def ids(self) -> np.ndarray:
        """Every id in the index, sorted (duplicates kept, so a check can see them)."""
        faiss = faiss_module()
        if self.plan.kind is IndexKind.FLAT:
            return np.sort(faiss.vector_to_array(self.index.id_map).astype(np.int64))
        lists = self.index.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).astype(np.int64)
            for i in range(lists.nlist)
            if lists.list_size(i)
        ]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        nprobe: int = 0,
        device: str = "cpu",
    ) -> SearchResult:
        """Top-k by inner product; `allowed` (sorted unique ids) restricts the candidates.

        With an allow-list an IVF index scans nprobe / (allowed fraction) lists, up to all of
        them, so a narrow filter still finds its k best instead of an empty probe.
        """
        q = _as_matrix(queries, self.dim)
        if k <= 0 or self.ntotal == 0 or (allowed is not None and not len(allowed)):
            return SearchResult.empty(len(q), max(k, 0))
        faiss = faiss_module()
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if self.plan.kind is IndexKind.FLAT:
                params = faiss.SearchParameters(sel=selector)
            else:
                widened = math.ceil(nprobe * self.ntotal / len(allowed))
                params = faiss.SearchParametersIVF(
                    sel=selector, nprobe=min(self.plan.nlist, widened)
                )
        elif self.plan.kind is not IndexKind.FLAT:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
        index = self.index
        if allowed is None and device != "cpu":
            index = self._on_gpu(nprobe, gpu_number(device)) or index
            params = None if index is not self.index else params
        with _threads_for(len(q)):
            scores, ids = index.search(q, k, params=params)
        return SearchResult(ids.astype(np.int64), scores.astype(np.float32))

    def _on_gpu(self, nprobe: int, gpu: int) -> Any:
        """A GPU copy on GPU number `gpu` for unfiltered search (made on first use, kept in
        step with changes; None when not possible)."""
        if self._gpu is not None and self._gpu_number != gpu:
            self._gpu = None  # the configured GPU changed: copy again there
        if self._gpu is None and not self._gpu_failed:
            faiss = faiss_module()
            try:
                self._gpu = faiss.index_cpu_to_gpu(gpu_resources(), gpu, self.index)
                self._gpu_number = gpu
            except Exception:  # a kind this faiss build cannot move: stay on the CPU
                self._gpu, self._gpu_failed = None, True
        if self._gpu is not None and self.plan.kind is not IndexKind.FLAT:
            with contextlib.suppress(Exception):
                faiss_module().GpuParameterSpace().set_index_parameter(self._gpu, "nprobe", nprobe)
        return self._gpu

    def write(self, handle: BinaryIO) -> None:
        faiss = faiss_module()
        faiss.write_index(self.index, faiss.PyCallbackIOWriter(handle.write))

    @classmethod
    def read(cls, handle: BinaryIO, plan: IndexPlan, dim: int, mapped: bool = False) -> VectorIndex:
        """The index at the start of the open file `handle` (its trailer, if any, left).

        `mapped`: where the system allows it, search the file's pages in place (memory-mapped,
        read-only) instead of copying the vectors into memory: a process that searches once
        (a cold `lbsearch query`) loaded 300 MB of indices at 100k segments in ~19 ms mapped
        against ~205 ms copied. Such an index cannot be changed."""
        faiss = faiss_module()
        reader = _reader(faiss, handle)
        flags = _map_flags()[plan.kind] if mapped and isinstance(reader, str) else 0
        index = _read_mapped(faiss, reader, flags) if flags else None
        if index is None:
            flags, index = 0, faiss.read_index(reader)
        if int(index.d) != dim:
            raise VectorIndexError(f"index has {index.d} dimensions, expected {dim}", "rebuild")
        _with_id_map(faiss, index, plan)
        found = cls(index, plan, dim)
        found.mapped = bool(flags)
        return found


def _read_mapped(faiss: Any, path: str, flags: int) -> Any:
    """The index at `path` memory-mapped, or None where this faiss cannot map it (then it is
    copied: a file that reads is never taken for a damaged one)."""
    try:
        index = faiss.read_index(path, flags)
    except RuntimeError:
        return None
    if hasattr(index, "invlists"):  # an IVF index's lists, now faiss's on-disk kind
        lists = faiss.downcast_InvertedLists(index.invlists)
        # which by default starts 32 threads to prefetch the probed lists at every search: a
        # search took 2.7 ms instead of 0.8 (50k segments, one query); without, as fast as copied
        if hasattr(lists, "prefetch_nthread"):
            lists.prefetch_nthread = 0
    return index


def _map_flags() -> dict[IndexKind, int]:
    import faiss

    # a flat index's codes in place (IFC: IndexFlatCodes); an IVF index's lists in place
    mmap_ifc, mmap = getattr(faiss, "IO_FLAG_MMAP_IFC", 0), getattr(faiss, "IO_FLAG_MMAP", 0)
    return {IndexKind.FLAT: mmap_ifc, IndexKind.IVF: mmap, IndexKind.IVF_PQ: mmap}


def _reader(faiss: Any, handle: BinaryIO) -> Any:
    """What faiss reads the open file `handle` from: its /dev/fd path where the system has one
    (faiss's own buffered reads: 300 MB of indices at 100k segments in 205 ms against 220 ms
    through a Python callback, fresh processes; the copy into new memory is most of it), else
    a callback. Either reads the file the handle opened, even if the path has been replaced by
    a newer index since."""
    try:
        fd_path = f"/dev/fd/{handle.fileno()}"
    except (OSError, ValueError, AttributeError):  # not a file of the system's (io.BytesIO)
        fd_path = ""
    if fd_path and Path(fd_path).exists() and handle.tell() == 0:
        return fd_path
    return faiss.PyCallbackIOReader(handle.read, 1 << 22)


def _with_id_map(faiss: Any, index: Any, plan: IndexPlan) -> None:
    """Give an IVF index an id -> list map (a hash table; kept through add, remove, write and
    read), so `rows` reads a hit's row, bias columns included, without scanning the lists:
    ranking needs the biases of ~240 candidates a query. Files written before it are given one
    when read (a pass over the lists, milliseconds at 100k)."""
    if plan.kind is IndexKind.IVF and index.direct_map.type != faiss.DirectMap.Hashtable:
        index.set_direct_map_type(faiss.DirectMap.Hashtable)


def gpu_number(device: str) -> int:
    """The GPU a device name means: "gpu:1" or "cuda:1" is 1; "gpu", "cuda" or "auto" is 0."""
    _, _, number = device.partition(":")
    return int(number) if number.isdigit() else 0


def gpu_available() -> bool:
    faiss = faiss_module()
    get = getattr(faiss, "get_num_gpus", None)
    return bool(get and get() > 0 and hasattr(faiss, "StandardGpuResources"))


def gpu_resources() -> Any:
    if _state["gpu_resources"] is None:
        _state["gpu_resources"] = faiss_module().StandardGpuResources()
    return _state["gpu_resources"]


def unique_ids(ids: np.ndarray) -> np.ndarray:
    """The distinct ids, sorted (int64), as np.unique gives them: np.unique of a plain array
    imports numpy.ma in numpy 2 (~20 ms of a cold query's CPU), for ids that are never masked."""
    ordered = np.sort(np.asarray(ids, dtype=np.int64).ravel())
    keep = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise VectorIndexError(
            f"vectors of shape {tuple(matrix.shape)} do not fit an index of {dim} dimensions",
            "use vectors from the same model the library was indexed with "
            "(`lbsearch status` lists the models)",
        )
    return np.ascontiguousarray(matrix)
