"""Every window of the files a search found is scored, also past what an IVF scan with a
selector reaches (moments are chosen among them)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from lbsearch.config import Config
from lbsearch.library import Library
from lbsearch.search.query import Hit
from lbsearch.search.streams import Scorer, file_windows
from lbsearch.testing.library import indexed_file
from lbsearch.testing.vectors import clustered_vectors
from lbsearch.types import Modality

VID = Modality.VIDEO
DIM = 16


def test_every_window_of_the_files_found_is_scored_through_an_ivf_index(tmp_path: Path) -> None:
    """1,600 windows of 4 long videos: over the 1,024 scored from their rows before, they went
    through an IVF scan with a selector, whose widened probe still skipped lists (and the
    windows in them)."""
    config = Config()
    config = replace(config, index=replace(config.index, exact_max_segments=300))
    vectors = clustered_vectors(4000, DIM, clusters=40, seed=3)
    long_ones = [f"/m/long{i}.mp4" for i in range(4)]
    files = [
        indexed_file(path, vectors[400 * i : 400 * (i + 1)], modality=VID, window_s=10.0)
        for i, path in enumerate(long_ones)
    ]
    files += [
        indexed_file(f"/m/short{i}.mp4", vectors[1600 + 10 * i : 1610 + 10 * i], modality=VID,
                     window_s=10.0)
        for i in range(240)
    ]  # fmt: skip
    with Library.open(tmp_path / "lib", config=config, write=True) as lib:
        lib.set_modality(VID, "m", "1", DIM)
        lib.write_batch(files)
    with Library.open(tmp_path / "lib", config=config) as lib:
        assert lib.index_size(VID) == 4000
        query = vectors[5] / np.linalg.norm(vectors[5])
        scorer = Scorer(lib, {VID: query.astype(np.float32)}, 0.0, 0.0, True)
        hits = [Hit(p, VID, 0.0, 0.0, 10.0, 1, 4000.0, 10, 1.0) for p in long_ones]
        with lib.snapshot():
            windows = file_windows(scorer, hits)
    assert sorted(windows) == long_ones
    for path in long_ones:
        assert len(windows[path]) == 400, path
        assert np.isfinite(windows[path].picture_score).all()
    assert windows["/m/long0.mp4"].picture_score.max() > 0.9999  # its own window 5
