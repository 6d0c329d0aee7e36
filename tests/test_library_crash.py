"""Crash safety: a writer killed (SIGKILL) at random instants leaves a sound catalog, and the
indices are consistent with it or repaired at the next open."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lbsearch.library import Library
from lbsearch.testing.library import assert_library_consistent
from lbsearch.types import Modality

WRITER = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    from lbsearch.catalog import IndexedFile, NewSegment
    from lbsearch.library import Library
    from lbsearch.types import Modality

    root, seed = sys.argv[1], int(sys.argv[2])
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    lib = Library.open(root, write=True)
    lib.set_modality(Modality.IMAGE, "img", "1", 32)
    lib.set_modality(Modality.AUDIO, "aud", "1", 32)
    print("ready", flush=True)

    def segment(modality, model, start):
        v = nrng.standard_normal(32).astype(np.float32)
        return NewSegment(modality, start, start + 10, model, v / np.linalg.norm(v))

    while True:
        files = []
        for _ in range(rng.randint(1, 25)):
            n = rng.randrange(400)  # a small path space: files get replaced often
            segs = [segment(Modality.IMAGE, "img", 0)]
            segs += [segment(Modality.AUDIO, "aud", 10 * k) for k in range(rng.randint(0, 3))]
            files.append(IndexedFile(f"/m/{n}.mp4", "/m", n, seed, f"h{n}", Modality.VIDEO,
                                     tuple(segs)))
        lib.write_batch(files)
        if rng.random() < 0.2:
            known = lib.catalog.files_by_paths([f"/m/{rng.randrange(400)}.mp4" for _ in range(8)])
            lib.delete_files([f.id for f in known.values()])
        if rng.random() < 0.5:
            lib.save()
    """
)


def kill_writer_at_random(root: Path, seed: int) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(seed)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "ready", "writer did not start"
    time.sleep(random.Random(seed).uniform(0.05, 0.8))
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL


def assert_consistent(root: Path) -> set[str]:
    """Reopen as a writer (repairing what the crash left behind), then check the catalog and
    the saved index files against each other; returns what the writer's open did."""
    with Library.open(root, write=True) as lib:
        repairs = {str(event) for event in lib.index_events.values()}
    assert_library_consistent(root, saved=True)
    return repairs


def run_crashes(tmp_path: Path, kills: int) -> set[str]:
    root = tmp_path / "lib"
    repairs: set[str] = set()
    for seed in range(kills):
        kill_writer_at_random(root, seed)
        if seed % 2:  # sometimes crash again before anyone repairs
            repairs |= assert_consistent(root)
    repairs |= assert_consistent(root)
    with Library.open(root) as reader:
        stats = reader.stats()
    assert stats.catalog.segments > 0 and stats.catalog.files <= 400
    assert {m.modality for m in stats.catalog.modalities} >= {Modality.IMAGE, Modality.AUDIO}
    return repairs


def test_writer_killed_at_random_points(tmp_path: Path) -> None:
    run_crashes(tmp_path, kills=4)


@pytest.mark.slow
def test_writer_killed_at_many_random_points(tmp_path: Path) -> None:
    repairs = run_crashes(tmp_path, kills=25)
    assert any(r.startswith(("repaired", "rebuilt")) for r in repairs), repairs


def test_writer_killed_between_commit_and_index_save(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    code = textwrap.dedent(
        f"""
        import time
        import numpy as np
        from lbsearch.catalog import IndexedFile, NewSegment
        from lbsearch.library import Library
        from lbsearch.types import Modality
        lib = Library.open({str(root)!r}, write=True)
        lib.set_modality(Modality.IMAGE, "img", "1", 8)
        def files(start):
            return [IndexedFile(f"/m/{{i}}.jpg", "/m", 1, 1, "h", Modality.IMAGE,
                    (NewSegment(Modality.IMAGE, 0, 0, "img", np.full(8, i + 1, np.float32)),))
                    for i in range(start, start + 10)]
        lib.write_batch(files(0))
        lib.save()
        lib.write_batch(files(10))  # committed; the index file still holds the first batch
        lib.delete_files([lib.catalog.file_by_path("/m/0.jpg").id])
        print("committed", flush=True)
        time.sleep(60)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "committed"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    repairs = assert_consistent(root)
    assert repairs == {"repaired: 10 added, 1 removed"}
