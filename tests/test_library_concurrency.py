"""Readers beside a writer: no "database is locked", and every read sees one consistent state."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from lbsearch.catalog import FileStatus, SegmentFilter
from lbsearch.library import Library
from lbsearch.testing.library import assert_library_consistent
from lbsearch.types import Modality

# Every file has exactly two image segments, in every committed state: a reader that counts
# files and segments in one snapshot always finds segments == 2 * files.
WRITER = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    from lbsearch.catalog import IndexedFile, NewSegment
    from lbsearch.library import Library
    from lbsearch.types import Modality

    root, batches = sys.argv[1], int(sys.argv[2])
    rng, nrng = random.Random(1), np.random.default_rng(1)
    with Library.open(root, write=True) as lib:
        lib.set_modality(Modality.IMAGE, "img", "1", 32)
        print("ready", flush=True)
        for b in range(batches):
            files = []
            for _ in range(10):
                n = rng.randrange(200)
                v = nrng.standard_normal((2, 32)).astype(np.float32)
                segs = tuple(NewSegment(Modality.IMAGE, 10 * k, 10 * k + 10, "img", v[k])
                             for k in range(2))
                files.append(IndexedFile(f"/m/{n}.jpg", "/m", n, b, f"h{n}", Modality.IMAGE, segs))
            lib.write_batch(files)
            if b % 7 == 0:
                gone = lib.catalog.files_by_paths([f"/m/{rng.randrange(200)}.jpg"])
                lib.delete_files([f.id for f in gone.values()])
            if b % 5 == 0:
                lib.save()
    print("done", flush=True)
    """
)


def test_readers_never_see_locks_or_half_batches(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), "250"], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    query = np.ones((2, 32), dtype=np.float32) / np.sqrt(32)
    rounds = 0
    try:
        while writer.poll() is None or rounds < 3:
            with Library.open(root) as reader:  # a fresh reader each round, like `lbsearch query`
                for _ in range(5):
                    stats = reader.stats()
                    assert stats.catalog.segments == 2 * stats.catalog.files, stats.catalog
                    indexed = sum(
                        m.files.get(FileStatus.INDEXED, 0) for m in stats.catalog.modalities
                    )
                    assert indexed == stats.catalog.files
                    result = reader.search(Modality.IMAGE, query, 5)
                    hits = reader.catalog.segments_by_ids(result.ids[result.ids >= 0])
                    assert all(h.file.path.startswith("/m/") for h in hits.values())
                    narrowed = reader.search(
                        Modality.IMAGE, query, 3, where=SegmentFilter(path_globs=("*/1*.jpg",))
                    )
                    found = reader.catalog.segments_by_ids(narrowed.ids[narrowed.ids >= 0])
                    assert all(h.file.path.startswith("/m/1") for h in found.values())
            rounds += 1
    finally:
        out, _ = writer.communicate(timeout=120)
    assert writer.returncode == 0 and "done" in out
    assert rounds >= 3
    assert_library_consistent(root, saved=True)
