"""The catalog a cold query opens (`SearchCatalog`): a search's reads on plain sqlite3, the same
answers as the full catalog's, everything else answered by a full one opened on first use."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import CatalogError, OfflineFolder, SegmentFilter
from lbsearch.catalog.searching import SearchCatalog
from lbsearch.catalog.store import Catalog
from lbsearch.config import Config
from lbsearch.library import Library
from lbsearch.testing.library import picture_library, unit_vectors
from tests.test_catalog import AUD, IMG, VID, image, video


def _filled(catalog: Catalog) -> list[int]:
    catalog.write_batch([image("/r/a.jpg", 1), image("/r/sub/b.jpg", 2)])
    catalog.write_batch([video("/r/v.mp4", seconds=3)])
    catalog.set_offline(["/r"], [OfflineFolder("/r/sub", "/r", "unreadable", 1.0)])
    return [int(i) for m in (IMG, VID) for i in catalog.segment_ids(m).ids]


def _search_catalog(catalog: Catalog) -> SearchCatalog:
    quick = SearchCatalog.open(catalog.path, busy_timeout_s=5.0)
    assert quick is not None
    return quick


def test_a_searchs_reads_answer_as_the_full_catalogs(catalog: Catalog) -> None:
    ids = _filled(catalog)
    with _search_catalog(catalog) as quick, quick.snapshot():
        assert quick.library_id == catalog.library_id
        assert quick.modality_states() == catalog.modality_states()
        assert quick.modality_states(counts=False) == catalog.modality_states(counts=False)
        assert quick.modality_state(VID) == catalog.modality_state(VID)
        assert quick.modality_state(AUD) == catalog.modality_state(AUD)
        assert quick.offline_paths() == catalog.offline_paths() == ("/r/sub",)
        assert quick.segments_by_ids(ids) == catalog.segments_by_ids(ids)
        found, expected = quick.segment_files(ids), catalog.segment_files(ids)
        windows = quick.segment_windows(["/r/v.mp4", "/r/a.jpg"])
        full = catalog.segment_windows(["/r/v.mp4", "/r/a.jpg"])
    for name in ("ids", "file_ids", "paths"):
        assert np.array_equal(getattr(found, name), getattr(expected, name))
    for name in ("ids", "paths", "modalities", "starts", "ends"):
        assert np.array_equal(getattr(windows, name), getattr(full, name))


def test_what_a_search_does_not_read_is_answered_by_a_full_catalog(catalog: Catalog) -> None:
    ids = _filled(catalog)
    under = SegmentFilter(path_globs=("/r/sub/*",))
    with _search_catalog(catalog) as quick:
        assert quick._full is None
        assert quick.segments_by_ids(ids, under) == catalog.segments_by_ids(ids, under)
        assert [f.path for f in quick.iter_files()] == [f.path for f in catalog.iter_files()]
        assert quick._full is not None  # opened once, for both


def test_it_never_writes(catalog: Catalog) -> None:
    _filled(catalog)
    with (
        _search_catalog(catalog) as quick,
        quick._raw_read() as conn,
        pytest.raises(sqlite3.OperationalError, match="readonly"),
    ):
        conn.execute("DELETE FROM files")
    assert len(list(catalog.iter_files())) == 3


def test_a_commit_during_a_snapshot_is_seen_after_it(catalog: Catalog) -> None:
    catalog.write_batch([image("/r/a.jpg", 1)])
    with _search_catalog(catalog) as quick:
        with quick.snapshot():
            before = quick.modality_states()[IMG].segment_count
            catalog.write_batch([image("/r/b.jpg", 2)])
            assert quick.modality_states()[IMG].segment_count == before == 1
        assert quick.modality_states()[IMG].segment_count == 2


def test_a_catalog_it_cannot_read_as_it_is_is_left_to_the_full_one(
    catalog: Catalog, tmp_path: Path
) -> None:
    with sqlite3.connect(catalog.path) as raw:
        raw.execute("PRAGMA user_version = 2")  # an older schema: the full catalog upgrades it
    assert SearchCatalog.open(catalog.path, busy_timeout_s=5.0) is None
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    assert SearchCatalog.open(junk, busy_timeout_s=5.0) is None
    with pytest.raises(CatalogError, match="damaged"):
        Catalog(junk)  # where the user learns what is wrong


def test_a_mapped_library_searches_on_it_and_finds_what_a_full_one_finds(tmp_path: Path) -> None:
    config = Config()
    picture_library(tmp_path / "lib", 300, config)
    query = unit_vectors(1, 16, seed=9)
    with Library.open(tmp_path / "lib", config=config) as full:
        expected = full.search(IMG, query, 5)
        rows = full.segments_by_ids(expected.ids[0])
    with Library.open(tmp_path / "lib", config=config, mapped=True) as lib:
        assert isinstance(lib.catalog, SearchCatalog)
        found = lib.search(IMG, query, 5)
        assert lib.segments_by_ids(found.ids[0]) == rows
    assert np.array_equal(found.ids, expected.ids)


def test_opening_a_library_to_search_it_imports_no_sqlalchemy(tmp_path: Path) -> None:
    picture_library(tmp_path / "lib", 50)
    script = (
        "import sys\nfrom lbsearch.config import Config\nfrom lbsearch.library import Library\n"
        "import numpy as np\n"
        f"with Library.open({str(tmp_path / 'lib')!r}, config=Config(), mapped=True) as lib:\n"
        "    found = lib.search(lib.modality_states().popitem()[0], np.ones((1, 16), 'float32'), 3)\n"
        "    lib.segments_by_ids(found.ids[0])\n"
        "print(len(found.ids[0]), 'sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["3", "False"], done.stderr
