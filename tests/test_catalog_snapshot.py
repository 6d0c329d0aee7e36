"""One read transaction for a search's look-ups (`snapshot`), and the look-ups it makes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event

from lbsearch.catalog.store import Catalog
from lbsearch.types import Modality
from tests.test_catalog import AUD, IMG, VID, image, video


def _begins(catalog: Catalog) -> list[int]:
    """A list that grows by one at each transaction the catalog's engine begins."""
    begun: list[int] = []

    @event.listens_for(catalog._engine, "begin")
    def _count(conn: Any) -> None:
        begun.append(1)

    return begun


def test_reads_in_a_snapshot_share_one_transaction_and_one_state(
    catalog: Catalog, tmp_path: Path
) -> None:
    catalog.write_batch([image("/r/a.jpg", 1)])
    begun = _begins(catalog)
    with Catalog(tmp_path / "catalog.sqlite") as writer, catalog.snapshot():
        first = catalog.segment_files(catalog.segment_ids(IMG).ids)
        writer.write_batch([image("/r/b.jpg", 2)])  # commits between two reads of the snapshot
        with catalog.snapshot():  # a nested snapshot joins the outer one
            later = catalog.segment_ids(IMG).ids
            windows = catalog.segment_windows(["/r/a.jpg", "/r/b.jpg"])
        assert catalog.offline_paths() == ()
    assert len(begun) == 1
    assert list(first.paths) == ["/r/a.jpg"] and len(later) == 1  # not the writer's commit
    assert list(windows.paths) == ["/r/a.jpg"]
    assert len(catalog.segment_ids(IMG).ids) == 2  # after it: the commit shows


def test_a_snapshot_is_the_threads_own(catalog: Catalog, tmp_path: Path) -> None:
    catalog.write_batch([image("/r/a.jpg", 1)])
    seen: list[int] = []
    with Catalog(tmp_path / "catalog.sqlite") as writer, catalog.snapshot():
        assert len(catalog.segment_ids(IMG).ids) == 1
        writer.write_batch([image("/r/b.jpg", 2)])
        other = threading.Thread(target=lambda: seen.append(len(catalog.segment_ids(IMG).ids)))
        other.start()
        other.join()
    assert seen == [2]  # another thread reads in its own transaction, after the commit


def test_segment_windows_are_every_segment_of_the_files_named(catalog: Catalog) -> None:
    catalog.write_batch([video("/r/v.mp4", seconds=3), video("/r/w.mp4", 2, "hw")])
    catalog.write_batch([image("/r/a.jpg", 1)])
    windows = catalog.segment_windows(["/r/v.mp4", "/r/a.jpg", "/r/missing.mp4"])
    assert list(windows.ids) == sorted(windows.ids)
    assert sorted(set(windows.paths)) == ["/r/a.jpg", "/r/v.mp4"]
    picture = windows.of(VID)
    assert list(picture.starts) == [0.0, 10.0, 20.0] and list(picture.ends) == [10.0, 20.0, 30.0]
    assert set(picture.paths) == {"/r/v.mp4"}
    sound = windows.of(AUD)
    assert list(sound.starts) == [0.0, 10.0] and set(sound.modalities) == {Modality.AUDIO}
    by_id = catalog.segments_by_ids(windows.ids)
    assert {i: (h.file.path, h.segment.start_s) for i, h in by_id.items()} == {
        int(i): (p, s) for i, p, s in zip(windows.ids, windows.paths, windows.starts, strict=True)
    }
    assert len(catalog.segment_windows([]).ids) == 0


def test_segment_files_and_rows_leave_out_ids_that_are_gone(catalog: Catalog) -> None:
    catalog.write_batch([image("/r/a.jpg", 1), image("/r/b.jpg", 2)])
    ids = catalog.segment_ids(IMG).ids
    asked = np.append(ids, 10_000)
    found = catalog.segment_files(asked)
    assert list(found.ids) == list(ids) and list(found.paths) == ["/r/a.jpg", "/r/b.jpg"]
    assert set(catalog.segments_by_ids(asked)) == set(ids.tolist())
