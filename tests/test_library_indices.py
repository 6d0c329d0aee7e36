"""The library keeps each modality's vector index equal to the catalog: build, save, reopen,
follow commits, repair, rebuild, re-plan by size, re-rank compressed indices, refresh readers."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import BatchResult, Catalog, IndexedFile, ModelChangedError, ShadowModel
from lbsearch.config import Config, IndexConfig
from lbsearch.library import IndexAction, IndexEvent, Library
from lbsearch.testing.library import assert_library_consistent, indexed_file, unit_vectors
from lbsearch.testing.vectors import clustered_vectors, recall_at_k
from lbsearch.types import Modality
from lbsearch.vectors import IndexKind, faiss_module
from lbsearch.vectors.store import read_index_meta

IMG = Modality.IMAGE
MODEL = "img-1"


def pictures(vectors: np.ndarray, start: int = 0) -> list[IndexedFile]:
    return [
        indexed_file(f"/r/{start + i}.jpg", v[None, :], model_id=MODEL, root="/r")
        for i, v in enumerate(vectors)
    ]


def commit(catalog: Catalog, vectors: np.ndarray, start: int = 0) -> list[BatchResult]:
    """Write straight to the catalog, behind the indices' back (as a crash between a commit and
    the index update leaves it)."""
    files = pictures(vectors, start)
    return [catalog.write_batch(files[lo : lo + 4000]) for lo in range(0, len(files), 4000)]


def open_library(root: Path, index: IndexConfig | None = None, write: bool = True) -> Library:
    return Library.open(root, config=Config(index=index or IndexConfig()), write=write)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with open_library(tmp_path / "lib") as lib:
        lib.set_modality(IMG, MODEL, "1", 32)
    return tmp_path / "lib"


@pytest.fixture
def lib(root: Path) -> Iterator[Library]:
    with open_library(root) as library:
        yield library


def exact_top(data: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(queries @ data.T), axis=1)[:, :k]]


def test_an_index_is_built_saved_and_reopened_fresh(root: Path) -> None:
    data = unit_vectors(500, 32)
    with open_library(root) as lib:
        commit(lib._catalog, data)
        assert lib.index_size(IMG) == 500
        assert lib.index_events[IMG].action is IndexAction.REBUILT
        assert lib.save() == [IMG]
        generation = lib.modality_states()[IMG].generation
    path = root / "vectors" / "image.faiss"
    meta = read_index_meta(path)
    assert meta is not None and (meta.count, meta.generation, meta.kind) == (
        500,
        generation,
        "flat",
    )
    assert faiss_module().read_index(str(path)).ntotal == 500  # a plain FAISS file + trailer
    with open_library(root, write=False) as reader:
        result = reader.search(IMG, data[:3], 1)
        assert reader.index_events[IMG] == IndexEvent(IMG, IndexAction.FRESH)
        np.testing.assert_array_equal(result.ids[:, 0], reader.catalog.segment_ids(IMG).ids[:3])
    assert_library_consistent(root, saved=True)


def test_indices_follow_commits_and_repair_what_was_not_saved(root: Path) -> None:
    with open_library(root) as lib:
        commit(lib._catalog, unit_vectors(300, 32))
        lib.index_size(IMG)
        lib.save()
        # committed but never saved: a crash between the catalog commit and the index save
        commit(lib._catalog, unit_vectors(50, 32, seed=2), start=300)
        lib._catalog.delete_files([f.id for f in lib.catalog.iter_files("/r")][:20])
        lib._indices.store.dirty.clear()  # as if killed before the save
        assert not lib.index_info()[0].up_to_date
    with open_library(root, write=False) as reader:
        (check,) = reader.check()
        event = reader.index_events[IMG]
        assert (event.action, event.added, event.removed) == (IndexAction.REPAIRED, 50, 20)
        assert str(event) == "repaired: 50 added, 20 removed"
        assert check.consistent and check.index_count == 330
    with open_library(root):  # the next writer saves the repair
        pass
    assert_library_consistent(root, saved=True)


def test_deltas_apply_in_memory_without_a_repair(lib: Library) -> None:
    lib.write_batch(pictures(unit_vectors(10, 32)))
    result = lib.write_batch(pictures(unit_vectors(5, 32, seed=4), start=10))
    lib.delete_files([result.file_ids[0]])
    assert lib.check()[0].consistent and lib.index_size(IMG) == 14
    assert lib.index_events[IMG].action is IndexAction.REBUILT  # built empty at the first batch


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage", "other-library"])
def test_damaged_or_foreign_index_files_are_rebuilt(
    root: Path, tmp_path: Path, damage: str
) -> None:
    with open_library(root) as lib:
        lib.write_batch(pictures(unit_vectors(200, 32)))
    path = root / "vectors" / "image.faiss"
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"\0" * 5000)
    else:
        with open_library(tmp_path / "other") as other:
            other.set_modality(IMG, MODEL, "1", 32)
            other.write_batch(pictures(unit_vectors(200, 32, seed=9)))
        shutil.copy(tmp_path / "other" / "vectors" / "image.faiss", path)
    with open_library(root, write=False) as reader:
        assert reader.check()[0].consistent
        event = reader.index_events[IMG]
        assert event.action is IndexAction.REBUILT and event.reason
        data = reader.catalog.vectors_by_ids(IMG, reader.catalog.segment_ids(IMG).ids[:3])
        np.testing.assert_array_equal(reader.search(IMG, data.vectors, 1).ids[:, 0], data.ids)


def test_a_model_change_keeps_the_index_until_the_re_embed_replaces_it(root: Path) -> None:
    with open_library(root) as lib:
        lib.write_batch(pictures(unit_vectors(20, 32)))
        lib.save()
        with pytest.raises(ModelChangedError):
            lib.set_modality(IMG, "img-2", "1", 16)
        assert lib.index_size(IMG) == 20
        lib.begin_reembed(IMG, ShadowModel("img-2", "1", 16))
        assert lib.reembed_todo(IMG) == 20
        new = [
            replace(f, segments=tuple(replace(s, model_id="img-2") for s in f.segments))
            for f in pictures(unit_vectors(20, 16, seed=3))
        ]
        lib.write_batch(new[:15], shadow={IMG})
        assert lib.index_size(IMG) == 20 and lib.reembed_todo(IMG) == 5  # old vectors serve
        lib.write_batch(new[15:], shadow={IMG})
        lib.finish_reembed(IMG)
        assert lib.index_size(IMG) == 20
        found = lib.search(IMG, new[3].segments[0].vector[None, :], 1)
        assert lib.segments_by_ids(found.ids[0])[int(found.ids[0][0])].file.path == "/r/3.jpg"
    meta = read_index_meta(root / "vectors" / "image.faiss")
    assert meta is not None and (meta.dim, meta.model_id, meta.count) == (16, "img-2", 20)


def test_growth_switches_to_ivf_and_shrinking_back_to_exact(root: Path) -> None:
    data = clustered_vectors(3000, 32, clusters=40)
    with open_library(root, IndexConfig(exact_max_segments=1000)) as lib:
        lib.write_batch(pictures(data[:900]))
        lib.save()
        assert lib.index_info()[0].kind == "flat"
        lib.write_batch(pictures(data[900:], start=900))
        lib.save()  # 3000 > 1000: rebuilt as IVF from the catalog's vectors
        info = lib.index_info()[0]
        assert (info.kind, info.count, info.up_to_date) == ("ivf", 3000, True)
        hits = lib.search(IMG, data[:20], 1)
        assert (hits.ids[:, 0] == lib.catalog.segment_ids(IMG).ids[:20]).mean() >= 0.95
        doomed = [f.id for f in lib.catalog.iter_files("/r")]
        lib.delete_files(doomed[:2200])
        lib.save()
        assert lib.index_info()[0].kind == "ivf"  # 800: above half the limit, keep the IVF index
        lib.delete_files(doomed[2200:2700])
        lib.save()
        assert (lib.index_info()[0].kind, lib.index_info()[0].count) == ("flat", 300)


def test_compressed_index_reranks_exactly_from_the_catalog(tmp_path: Path) -> None:
    dim, n = 64, 12_000
    config = IndexConfig(exact_max_segments=1000, compressed_min_segments=10_000)
    data = clustered_vectors(n, dim, clusters=100)
    with open_library(tmp_path / "lib", config) as lib:
        lib.set_modality(IMG, MODEL, "2", dim)
        commit(lib._catalog, data)
        assert lib.rebuild_index(IMG) == IndexEvent(IMG, IndexAction.REBUILT, reason="asked")
        assert lib.index_info()[0].kind == IndexKind.IVF_PQ.value
        queries = clustered_vectors(50, dim, clusters=100, sample_seed=7, gap=1.0)
        ids = lib.catalog.segment_ids(IMG).ids
        result = lib.search(IMG, queries, 10)
    assert recall_at_k(result.ids, exact_top(data, ids, queries, 10)) >= 0.95
    by_id = dict(zip(ids.tolist(), data, strict=True))
    for row, scores, q in zip(result.ids, result.scores, queries, strict=True):
        exact = np.array([by_id[i] @ q for i in row])  # scores are exact after re-ranking
        np.testing.assert_allclose(scores, exact, atol=1e-5)
        assert np.all(np.diff(scores) <= 0)


# ------------------------------------------------------------------------- refresh


def test_a_reader_sees_each_committed_batch_after_refresh(root: Path) -> None:
    data = unit_vectors(40, 32, seed=5)
    with open_library(root) as writer, open_library(root, write=False) as reader:
        writer.write_batch(pictures(data[:10]))
        writer.save()
        assert reader.index_size(IMG) == 10
        writer.write_batch(pictures(data[10:25], start=10))  # committed, file not saved yet
        assert reader.index_size(IMG) == 10  # nothing moves under a reader's feet
        assert reader.refresh() == {IMG: IndexEvent(IMG, IndexAction.REPAIRED, added=15)}
        assert reader.index_size(IMG) == 25 and reader.check()[0].consistent
        assert reader.search(IMG, data[20:21], 1).ids[0, 0] == 21
        assert reader.refresh() == {}  # nothing new: nothing reloaded
        writer.save()
        writer.delete_files([f.id for f in writer.catalog.iter_files("/r")][:5])
        writer.save()
        assert reader.refresh() == {IMG: IndexEvent(IMG, IndexAction.FRESH)}  # the saved file
        assert reader.index_size(IMG) == 20


def test_refresh_swaps_whole_indices_under_concurrent_searches(root: Path) -> None:
    """Searches running while a writer commits and the reader refreshes always see a whole
    index: the first pictures, never changed, are always found as their own best match."""
    data = unit_vectors(400, 32, seed=6)
    errors: list[BaseException] = []
    stop = threading.Event()
    with open_library(root) as writer, open_library(root, write=False) as reader:
        writer.write_batch(pictures(data[:20]))
        reader.index_size(IMG)
        first = reader.search(IMG, data[:4], 1).ids[:, 0]

        def search_forever() -> None:
            try:
                while not stop.is_set():
                    np.testing.assert_array_equal(reader.search(IMG, data[:4], 5).ids[:, 0], first)
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=search_forever) for _ in range(2)]
        for thread in threads:
            thread.start()
        for start in range(20, 400, 20):
            writer.write_batch(pictures(data[start : start + 20], start=start))
            if start % 60 == 0:
                writer.save()
            reader.refresh()
        stop.set()
        for thread in threads:
            thread.join()
        reader.refresh()
        assert errors == [] and reader.index_size(IMG) == 400
