"""Vector indices: planning, exact and approximate search, filters, atomic files, repair."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import BatchResult, Catalog, IndexedFile, NewSegment
from lbsearch.config import IndexConfig
from lbsearch.testing.vectors import clustered_vectors, recall_at_k
from lbsearch.types import Modality
from lbsearch.vectors import (
    IndexKind,
    IndexPlan,
    VectorIndex,
    VectorIndexError,
    VectorStore,
    faiss_module,
    plan_index,
)
from lbsearch.vectors.index import plan_still_fits
from lbsearch.vectors.store import read_index_meta

IMG = Modality.IMAGE
MODEL = "img-1"


def unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def store_vectors(
    catalog: Catalog, vectors: np.ndarray, start: int = 0, batch: int = 2000
) -> list[BatchResult]:
    results = []
    for lo in range(0, len(vectors), batch):
        files = [
            IndexedFile(
                f"/r/{start + i}.jpg",
                "/r",
                1,
                1,
                f"h{start + i}",
                IMG,
                (NewSegment(IMG, 0, 0, MODEL, vectors[i]),),
            )
            for i in range(lo, min(lo + batch, len(vectors)))
        ]
        results.append(catalog.write_batch(files))
    return results


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path / "catalog.sqlite", create=True)
    cat.set_modality(IMG, MODEL, "1", 32)
    yield cat
    cat.close()


def exact_top(data: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-(queries @ data.T), axis=1)[:, :k]
    return ids[order]


# ------------------------------------------------------------------------------- planning


def test_plan_grows_from_exact_to_ivf_to_pq() -> None:
    config = IndexConfig()
    assert plan_index(50_000, 768, config).kind is IndexKind.FLAT
    ivf = plan_index(400_000, 768, config)
    assert (ivf.kind, ivf.nlist) == (IndexKind.IVF, 1024)
    pq = plan_index(3_000_000, 768, config)
    assert (pq.kind, pq.pq_m) == (IndexKind.IVF_PQ, 96)
    assert plan_index(3_000_000, 1024, config).pq_m == 64
    small = IndexConfig(exact_max_segments=100)
    assert plan_index(2000, 32, small).nlist <= 2000 // 39  # enough training points per list


def test_plan_hysteresis() -> None:
    config = IndexConfig(exact_max_segments=1000)
    ivf = plan_index(5000, 64, config)
    assert plan_still_fits(ivf, 5000, 64, config)
    assert plan_still_fits(ivf, 800, 64, config)  # between half the limit and the limit: keep
    assert not plan_still_fits(ivf, 400, 64, config)
    assert not plan_still_fits(ivf, 5000 * 64, 64, config)  # nlist would be 8x larger
    assert not plan_still_fits(IndexPlan(IndexKind.FLAT), 1001, 64, config)


def test_blas_threshold_is_lowered_for_batched_search() -> None:
    faiss = faiss_module()
    assert faiss.cvar.distance_compute_blas_threshold <= 3200 * faiss.omp_get_max_threads()


# ---------------------------------------------------------------------------- VectorIndex


def test_flat_search_is_exact_and_respects_allow_lists() -> None:
    data, queries = unit(3000, 32), unit(5, 32, seed=1)
    ids = np.arange(3000, dtype=np.int64) * 7 + 3
    index = VectorIndex.new(IndexPlan(IndexKind.FLAT), 32)
    index.add(ids, data)
    result = index.search(queries, 10)
    np.testing.assert_array_equal(result.ids, exact_top(data, ids, queries, 10))
    allowed = np.sort(ids[::50])
    filtered = index.search(queries, 10, allowed=allowed)
    mask = np.isin(ids, allowed)
    np.testing.assert_array_equal(filtered.ids, exact_top(data[mask], ids[mask], queries, 10))
    assert index.remove(ids[:100]) == 100 and index.ntotal == 2900
    assert np.array_equal(index.ids(), np.sort(ids[100:]))
    empty = index.search(queries, 4, allowed=np.zeros(0, dtype=np.int64))
    assert (empty.ids == -1).all()
    with pytest.raises(VectorIndexError, match="dimensions") as err:
        index.search(unit(1, 16), 3)
    assert "same model" in err.value.hint


def test_ivf_with_a_narrow_filter_still_finds_the_allowed_best() -> None:
    data, queries = (
        clustered_vectors(8000, 64, clusters=50),
        clustered_vectors(20, 64, sample_seed=5),
    )
    ids = np.arange(8000, dtype=np.int64)
    plan = plan_index(8000, 64, IndexConfig(exact_max_segments=100))
    index = VectorIndex.new(plan, 64, data[::2])
    index.add(ids, data)
    allowed = np.sort(np.random.default_rng(3).choice(ids, 40, replace=False))
    found = index.search(queries, 5, allowed=allowed, nprobe=4)
    mask = np.isin(ids, allowed)
    assert recall_at_k(found.ids, exact_top(data[mask], ids[mask], queries, 5)) == 1.0
    removed = index.remove(ids[:10])
    assert removed == 10 and len(index.ids()) == 7990


@pytest.mark.parametrize("n", [20_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_ivf_recall_on_clustered_768d_vectors(n: int) -> None:
    """Approximate search on embedding-like data: recall@10 >= 0.95 against exact search."""
    data = clustered_vectors(n, 768, clusters=300)
    queries = clustered_vectors(200, 768, clusters=300, sample_seed=99, gap=1.0)
    config = IndexConfig(exact_max_segments=1000)
    plan = plan_index(n, 768, config)
    assert plan.kind is IndexKind.IVF
    ids = np.arange(n, dtype=np.int64)
    sample = data[np.random.default_rng(0).choice(n, plan.training_size(n), replace=False)]
    index = VectorIndex.new(plan, 768, sample)
    index.add(ids, data)
    from lbsearch.vectors.index import default_nprobe

    found = index.search(queries, 10, nprobe=default_nprobe(plan, config))
    assert recall_at_k(found.ids, exact_top(data, ids, queries, 10)) >= 0.95


# ---------------------------------------------------------------------------- VectorStore


def test_store_builds_saves_and_reopens_fresh(catalog: Catalog, tmp_path: Path) -> None:
    data = unit(500, 32)
    store_vectors(catalog, data)
    store = VectorStore(tmp_path / "vectors", catalog)
    assert store.index(IMG) is not None and store.events[IMG].startswith("rebuilt")
    assert store.save() == [IMG]
    path = store.path(IMG)
    meta = read_index_meta(path)
    assert meta is not None and (meta.count, meta.generation, meta.kind) == (500, 1, "flat")
    assert faiss_module().read_index(str(path)).ntotal == 500  # a plain FAISS file + trailer
    again = VectorStore(tmp_path / "vectors", catalog)
    result = again.search(IMG, data[:3], 1)
    assert again.events[IMG] == "fresh"
    np.testing.assert_array_equal(result.ids[:, 0], catalog.segment_ids(IMG).ids[:3])
    assert all(i.up_to_date for i in again.info())


def test_store_follows_batches_and_repairs_what_was_not_saved(
    catalog: Catalog, tmp_path: Path
) -> None:
    store = VectorStore(tmp_path / "vectors", catalog)
    store_vectors(catalog, unit(300, 32))
    store.index(IMG)
    store.save()
    # committed but never saved: a crash between the catalog commit and the index save
    store_vectors(catalog, unit(50, 32, seed=2), start=300)
    gone = [f.id for f in catalog.iter_files("/r")][:20]
    catalog.delete_files(gone)
    assert not store.info()[0].up_to_date
    reopened = VectorStore(tmp_path / "vectors", catalog)
    check = reopened.check(IMG)
    assert reopened.events[IMG] == "repaired: 50 added, 20 removed"
    assert check.consistent and check.index_count == 330
    reopened.save()
    assert VectorStore(tmp_path / "vectors", catalog).info()[0].up_to_date


def test_store_applies_deltas_in_memory(catalog: Catalog, tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "vectors", catalog)
    store_vectors(catalog, unit(10, 32))
    store.index(IMG)
    data = unit(5, 32, seed=4)
    files = [
        IndexedFile(f"/r/n{i}.jpg", "/r", 1, 1, "x", IMG, (NewSegment(IMG, 0, 0, MODEL, data[i]),))
        for i in range(5)
    ]
    result = catalog.write_batch(files)
    store.apply(result)
    store.apply(catalog.delete_files([result.file_ids[0]]))
    assert store.check(IMG).consistent and store.index(IMG).ntotal == 14  # type: ignore[union-attr]
    assert IMG in store.dirty and "repaired" not in store.events.get(IMG, "")


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "other-library"])
def test_damaged_or_foreign_index_files_are_rebuilt(
    catalog: Catalog, tmp_path: Path, damage: str
) -> None:
    store_vectors(catalog, unit(200, 32))
    store = VectorStore(tmp_path / "vectors", catalog)
    store.index(IMG)
    store.save()
    path = store.path(IMG)
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"\0" * 5000)
    else:
        other = Catalog(tmp_path / "other.sqlite", create=True)
        other.set_modality(IMG, MODEL, "1", 32)
        store_vectors(other, unit(200, 32, seed=9))
        foreign = VectorStore(tmp_path / "other-vectors", other)
        foreign.index(IMG)
        foreign.save()
        shutil.copy(foreign.path(IMG), path)
        other.close()
    reopened = VectorStore(tmp_path / "vectors", catalog)
    assert reopened.check(IMG).consistent
    assert reopened.events[IMG].startswith("rebuilt")
    data = catalog.vectors_by_ids(IMG, catalog.segment_ids(IMG).ids[:3])
    np.testing.assert_array_equal(reopened.search(IMG, data.vectors, 1).ids[:, 0], data.ids)


def test_model_change_resets_the_index(catalog: Catalog, tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "vectors", catalog)
    store_vectors(catalog, unit(20, 32))
    store.index(IMG)
    store.save()
    store.apply(catalog.set_modality(IMG, "img-2", "1", 16))
    index = store.index(IMG)
    assert index is not None and (index.dim, index.ntotal) == (16, 0)
    store.save()
    meta = read_index_meta(store.path(IMG))
    assert meta is not None and (meta.dim, meta.model_id) == (16, "img-2")


def test_growth_switches_to_ivf_and_shrinking_back_to_exact(
    catalog: Catalog, tmp_path: Path
) -> None:
    config = IndexConfig(exact_max_segments=1000)
    store = VectorStore(tmp_path / "vectors", catalog, config)
    data = clustered_vectors(3000, 32, clusters=40)
    for result in store_vectors(catalog, data[:900]):
        store.apply(result)
    store.save()
    assert store.info()[0].kind == "flat"
    for result in store_vectors(catalog, data[900:], start=900):
        store.apply(result)
    store.save()  # 3000 > 1000: rebuilt as IVF from the catalog's vectors
    info = store.info()[0]
    assert (info.kind, info.count, info.up_to_date) == ("ivf", 3000, True)
    hits = store.search(IMG, data[:20], 1)
    assert (hits.ids[:, 0] == catalog.segment_ids(IMG).ids[:20]).mean() >= 0.95
    doomed = [f.id for f in catalog.iter_files("/r")]
    store.apply(catalog.delete_files(doomed[:2200]))
    store.save()
    assert store.info()[0].kind == "ivf"  # 800: above half the limit, keep the IVF index
    store.apply(catalog.delete_files(doomed[2200:2700]))
    store.save()
    assert (store.info()[0].kind, store.info()[0].count) == ("flat", 300)


def test_compressed_index_reranks_exactly_from_the_catalog(
    catalog: Catalog, tmp_path: Path
) -> None:
    dim, n = 64, 12_000
    catalog.set_modality(IMG, MODEL, "2", dim)
    data = clustered_vectors(n, dim, clusters=100)
    store_vectors(catalog, data, batch=4000)
    config = IndexConfig(exact_max_segments=1000, compressed_min_segments=10_000)
    store = VectorStore(tmp_path / "vectors", catalog, config)
    index = store.index(IMG)
    assert index is not None and index.plan.kind is IndexKind.IVF_PQ
    queries = clustered_vectors(50, dim, clusters=100, sample_seed=7, gap=1.0)
    ids = catalog.segment_ids(IMG).ids
    result = store.search(IMG, queries, 10)
    assert recall_at_k(result.ids, exact_top(data, ids, queries, 10)) >= 0.95
    by_id = dict(zip(ids.tolist(), data, strict=True))
    for row, scores, q in zip(result.ids, result.scores, queries, strict=True):
        exact = np.array([by_id[i] @ q for i in row])  # scores are exact after re-ranking
        np.testing.assert_allclose(scores, exact, atol=1e-5)
        assert np.all(np.diff(scores) <= 0)


def test_gpu_path_is_used_when_faiss_reports_a_gpu(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faiss = faiss_module()
    moved = []

    def to_gpu(resources: object, device: int, index: object) -> object:
        moved.append(device)
        return index  # the CPU index stands in for the GPU copy

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    from lbsearch.vectors import index as index_module

    monkeypatch.setitem(index_module._state, "gpu_resources", None)
    data = unit(100, 32)
    store_vectors(catalog, data)
    store = VectorStore(tmp_path / "vectors", catalog)
    assert store.search(IMG, data[:2], 1).ids.shape == (2, 1)
    assert moved == [0]
    allowed = catalog.segment_ids(IMG).ids[:5]
    store.search(IMG, data[:2], 1, allowed=allowed)  # filtered search stays on the CPU
    assert moved == [0]
    cpu_only = VectorStore(tmp_path / "vectors", catalog, IndexConfig(device="cpu"))
    cpu_only.search(IMG, data[:2], 1)
    assert moved == [0]


def test_saving_is_atomic(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_vectors(catalog, unit(50, 32))
    store = VectorStore(tmp_path / "vectors", catalog)
    store.index(IMG)
    store.save()
    before = store.path(IMG).read_bytes()
    store_vectors(catalog, unit(10, 32, seed=3), start=50)
    store.index(IMG)
    store.dirty.add(IMG)
    store._loaded[IMG] = store._load(IMG)

    def half_written(self: VectorIndex, handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VectorIndex, "write", half_written)
    with pytest.raises(VectorIndexError, match="cannot save") as err:
        store.save()
    assert "free space" in err.value.hint
    assert store.path(IMG).read_bytes() == before
    assert list((tmp_path / "vectors").iterdir()) == [store.path(IMG)]


def test_config_is_validated() -> None:
    from lbsearch.errors import ConfigError

    with pytest.raises(ConfigError, match="device"):
        VectorStore(Path("/nonexistent"), None, dataclasses.replace(IndexConfig(), device="tpu"))  # type: ignore[arg-type]
