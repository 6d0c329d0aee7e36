"""A reader that searches once (a cold `lbsearch query`) searches its up-to-date index files in
place, memory-mapped, instead of copying them into memory; one to be repaired is copied."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog.store import Catalog
from lbsearch.config import Config
from lbsearch.library import Library
from lbsearch.testing.library import image_files, picture_library, unit_vectors
from lbsearch.types import Modality
from lbsearch.vectors import VectorIndexError
from lbsearch.vectors.index import faiss_module

IMG = Modality.IMAGE


def _config(exact_max: int) -> Config:
    config = Config()
    return replace(config, index=replace(config.index, exact_max_segments=exact_max))


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="maps through the /dev/fd path")
@pytest.mark.parametrize("exact_max", [10_000, 300])  # a flat index, an IVF one
def test_a_mapped_reader_finds_what_a_copying_one_finds(tmp_path: Path, exact_max: int) -> None:
    config = _config(exact_max)
    picture_library(tmp_path / "lib", 2000, config)
    queries = unit_vectors(3, 16, seed=5)
    with Library.open(tmp_path / "lib", config=config) as copied:
        expected = copied.search(IMG, queries, 10)
        assert not copied._indices.index(IMG).mapped  # type: ignore[union-attr]
    with Library.open(tmp_path / "lib", config=config, mapped=True) as lib:
        found = lib.search(IMG, queries, 10)
        index = lib._indices.index(IMG)
        assert index is not None and index.mapped
        if exact_max == 300:  # an IVF index: its lists are not prefetched by 32 threads a search
            lists = faiss_module().downcast_InvertedLists(index.index.invlists)
            assert lists.prefetch_nthread == 0
        with pytest.raises(VectorIndexError, match="memory-mapped"):
            index.add(np.array([10**9]), unit_vectors(1, index.dim))
    assert np.array_equal(found.ids, expected.ids)
    assert np.allclose(found.scores, expected.scores)


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="maps through the /dev/fd path")
def test_a_mapped_reader_copies_an_index_that_must_be_repaired(tmp_path: Path) -> None:
    """Segments committed after the file was saved (an indexer still running, or killed) are
    added to a copy in memory: a mapped index cannot take them."""
    config = _config(300)
    picture_library(tmp_path / "lib", 1000, config)
    with Catalog(tmp_path / "lib" / "catalog.sqlite") as catalog:  # behind the index file
        catalog.write_batch(image_files(1000, 5))
    with Library.open(tmp_path / "lib", config=config, mapped=True) as lib:
        assert lib.index_size(IMG) == 1005
        index = lib._indices.index(IMG)
        assert index is not None and not index.mapped
        newest = image_files(1000, 5)[2].segments[0].vector
        found = lib.search(IMG, newest[None, :], 1)
        hit = lib.segments_by_ids(found.ids[0])[int(found.ids[0][0])]
        assert hit.file.path == "/media/1002.jpg"


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="maps through the /dev/fd path")
def test_a_faiss_that_cannot_map_an_index_copies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not taken for a damaged file (which would be rebuilt from the catalog at every query)."""
    config = _config(300)
    picture_library(tmp_path / "lib", 1000, config)
    faiss = faiss_module()
    plain = faiss.read_index

    def no_mapping(path: str, *flags: int) -> object:
        if flags:
            raise RuntimeError("Error in read_index: mmap not supported here")
        return plain(path)

    monkeypatch.setattr(faiss, "read_index", no_mapping)
    with Library.open(tmp_path / "lib", config=config, mapped=True) as lib:
        index = lib._indices.index(IMG)
        assert index is not None and not index.mapped and index.ntotal == 1000
        assert lib._indices.events[IMG].action.value == "fresh"  # read, not rebuilt
