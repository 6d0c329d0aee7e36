"""A search filtered to a few segments scores them from the stored vectors, never scanning the
index (a moment search asks for the segments of the few files it found)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import SegmentFilter
from lbsearch.library import Library
from lbsearch.testing.library import image_files as batch
from lbsearch.testing.library import unit_vectors
from lbsearch.types import Modality
from lbsearch.vectors import VectorStore

IMG = Modality.IMAGE


def test_a_few_allowed_segments_are_scored_exactly_without_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Library.open(tmp_path / "lib", write=True) as lib:
        lib.set_modality(IMG, "m", "1", 16)
        lib.write_batch(batch(0, 40))
        query = unit_vectors(1, 16, seed=99)
        wanted = [f"/media/{n}.jpg" for n in (3, 7, 11, 30)]
        records = [lib.file_by_path(p) for p in wanted]
        rows = [lib.stored_vectors(r) for r in records if r is not None]
        stored = np.stack([r[0] for r in rows if r is not None])
        expected = sorted(stored @ query[0], reverse=True)[:3]

        def no_scan(*_: object, **__: object) -> None:
            raise AssertionError("the index was scanned for 4 allowed segments")

        monkeypatch.setattr(VectorStore, "search", no_scan)
        found = lib.search(IMG, query, 3, where=SegmentFilter(path_globs=tuple(wanted)))
        assert np.allclose(found.scores[0], expected, atol=1e-5)
        paths = {h.file.path for h in lib.segments_by_ids(found.ids[0]).values()}
        assert paths <= set(wanted) and len(paths) == 3
        padded = lib.search(IMG, query, 6, where=SegmentFilter(path_globs=tuple(wanted)))
        assert list(padded.ids[0][4:]) == [-1, -1]
