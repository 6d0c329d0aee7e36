"""The covering indices a search reads through: a writer adds them to a catalog that lacks them,
SQLite uses them for the look-ups, and a catalog without them answers the same."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from lbsearch.catalog import lookups
from lbsearch.catalog.searching import SearchCatalog
from lbsearch.catalog.shape import SEARCH_INDEXES
from lbsearch.catalog.store import Catalog
from lbsearch.library import Library
from tests.test_catalog import AUD, IMG, VID, image, video

PATHS = ["/r/a.jpg", "/r/b.jpg", "/r/v.mp4", "/r/w.mp4"]


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:
        return {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def _new(path: Path) -> Catalog:
    catalog = Catalog(path, create=True)
    catalog.set_modality(IMG, "img-1", "1", 8)
    catalog.set_modality(VID, "vid-1", "1", 8)
    catalog.set_modality(AUD, "aud-1", "1", 8)
    return catalog


def _fill(catalog: Catalog) -> list[int]:
    catalog.write_batch([image("/r/a.jpg", 1), image("/r/b.jpg", 2)])
    catalog.write_batch([video("/r/v.mp4", seconds=3), video("/r/w.mp4", seconds=2)])
    return [int(i) for m in (IMG, VID, AUD) for i in catalog.segment_ids(m).ids]


def _plan(catalog: Catalog, query: str, count: int) -> str:
    with sqlite3.connect(catalog.path) as raw:
        rows = raw.execute(
            f"EXPLAIN QUERY PLAN {query.format(marks=','.join('?' * count))}", [1] * count
        )
        return " | ".join(str(r[-1]) for r in rows)


def test_a_writer_adds_them_to_a_catalog_without_them(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    Catalog(root / "catalog.sqlite", create=True).close()  # as a version before them left it
    assert not set(SEARCH_INDEXES) & _indexes(root / "catalog.sqlite")
    with Library.open(root, write=True):
        pass
    assert set(SEARCH_INDEXES) <= _indexes(root / "catalog.sqlite")
    with Library.open(root, write=True):  # present: nothing to do
        pass


def test_the_look_ups_read_the_indices_not_the_rows(tmp_path: Path) -> None:
    catalog = _new(tmp_path / "c.sqlite")
    _fill(catalog)
    assert catalog.add_search_indexes() == list(SEARCH_INDEXES)
    assert catalog.add_search_indexes() == []
    with catalog._raw_read() as conn:
        files_of = catalog._files_of(conn)
    assert "COVERING INDEX segments_id_cover" in _plan(catalog, files_of, 3)
    assert "COVERING INDEX segments_file_cover" in _plan(catalog, lookups._WINDOWS_OF, 2)
    catalog.close()


def test_with_and_without_them_the_answers_are_the_same(tmp_path: Path) -> None:
    plain, covered = _new(tmp_path / "plain.sqlite"), _new(tmp_path / "covered.sqlite")
    ids = _fill(plain)
    assert _fill(covered) == ids
    covered.add_search_indexes()
    quick = SearchCatalog.open(covered.path, busy_timeout_s=5.0)
    assert quick is not None
    for reader in (covered, quick):
        with reader.snapshot():
            found, expected = reader.segment_files(ids[::-1]), plain.segment_files(ids[::-1])
            windows, full = reader.segment_windows(PATHS), plain.segment_windows(PATHS)
        for name in ("ids", "file_ids", "paths"):
            assert np.array_equal(getattr(found, name), getattr(expected, name))
        for name in ("ids", "paths", "modalities", "starts", "ends"):
            assert np.array_equal(getattr(windows, name), getattr(full, name))
    assert quick._files_of(quick._conn) is lookups._FILES_OF_COVERED
    assert quick._full is None  # looking for the index opened no SQLAlchemy catalog
    with plain._raw_read() as conn:
        assert plain._files_of(conn) is lookups._FILES_OF
    quick.close()
    plain.close()
    covered.close()
