"""The catalog: files, segments and vectors in SQLite, as the indexer and the search layer use it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import (
    Catalog,
    CatalogError,
    FailedFile,
    FileStatus,
    IndexedFile,
    ModelChangedError,
    NewSegment,
    RunCounts,
    SegmentFilter,
    hash_file,
)
from lbsearch.testing.library import unit_vectors
from lbsearch.types import Modality

DIM = 8
IMG = Modality.IMAGE
VID = Modality.VIDEO
AUD = Modality.AUDIO


def vec(seed: int) -> np.ndarray:
    return unit_vectors(1, DIM, seed)[0]


def image(path: str, seed: int = 0, *, root: str = "/r", content: str | None = None) -> IndexedFile:
    return IndexedFile(
        path=path,
        root=root,
        size=100 + seed,
        mtime_ns=1_000 + seed,
        content_hash=content or f"h{seed}",
        modality=IMG,
        segments=(NewSegment(IMG, 0.0, 0.0, "img-1", vec(seed)),),
        width=640,
        height=480,
        model_id="img-1",
    )


def video(path: str, seconds: int = 3, content: str = "hv") -> IndexedFile:
    segs = [NewSegment(VID, 10.0 * i, 10.0 * (i + 1), "vid-1", vec(50 + i)) for i in range(seconds)]
    segs += [NewSegment(AUD, 10.0 * i, 10.0 * (i + 1), "aud-1", vec(80 + i)) for i in range(2)]
    return IndexedFile(
        path=path,
        root="/r",
        size=5000,
        mtime_ns=7,
        content_hash=content,
        modality=VID,
        segments=tuple(segs),
        duration_s=10.0 * seconds,
        model_id="vid-1",
    )


def test_new_catalog_is_wal_and_sound(catalog: Catalog) -> None:
    with sqlite3.connect(catalog.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert catalog.integrity_check() == []
    assert len(catalog.library_id) == 32


def test_write_then_look_up_by_path(catalog: Catalog) -> None:
    result = catalog.write_batch([image("/r/a.jpg", 1), image("/r/b.jpg", 2)])
    assert len(result.file_ids) == 2
    delta = result.deltas[IMG]
    assert (delta.generation_before, delta.generation) == (0, 1)
    assert delta.added_vectors.shape == (2, DIM) and len(delta.removed_ids) == 0
    record = catalog.file_by_path("/r/a.jpg")
    assert record is not None
    assert (record.size, record.mtime_ns, record.content_hash) == (101, 1001, "h1")
    assert (record.status, record.modality, record.width, record.height) == (
        FileStatus.INDEXED,
        IMG,
        640,
        480,
    )
    assert catalog.file_by_path("/r/missing.jpg") is None
    assert set(catalog.files_by_paths(["/r/a.jpg", "/r/b.jpg", "/r/c.jpg"])) == {
        "/r/a.jpg",
        "/r/b.jpg",
    }


def test_unchanged_is_decided_by_size_mtime_ctime_and_inode(
    catalog: Catalog, tmp_path: Path
) -> None:
    media = tmp_path / "x.jpg"
    media.write_bytes(b"abc")
    st = media.stat()
    item = image(str(media), 0)
    identity = {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "dev": st.st_dev,
        "ino": st.st_ino,
    }
    catalog.write_batch([IndexedFile(**{**item.__dict__, **identity})])
    record = catalog.file_by_path(str(media))
    assert record is not None and record.unchanged(media.stat())
    os.utime(media, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert not record.unchanged(media.stat())
    # another file put in its place, of the same size and dated back (`touch -r`): caught
    os.utime(media, ns=(st.st_atime_ns, st.st_mtime_ns))
    other = tmp_path / "y.jpg"
    other.write_bytes(b"xyz")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    other.replace(media)
    assert (media.stat().st_size, media.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert not record.unchanged(media.stat())


def test_replacing_a_file_replaces_its_segments(catalog: Catalog) -> None:
    first = catalog.write_batch([video("/r/v.mp4", seconds=3)])
    old_ids = set(first.deltas[VID].added_ids.tolist())
    second = catalog.write_batch([video("/r/v.mp4", seconds=2, content="hv2")])
    assert set(second.deltas[VID].removed_ids.tolist()) == old_ids
    assert len(second.deltas[VID].added_ids) == 2
    assert min(second.deltas[VID].added_ids) > max(old_ids)  # ids are never reused
    assert len(catalog.segment_ids(VID).ids) == 2
    assert catalog.file_by_path("/r/v.mp4").content_hash == "hv2"  # type: ignore[union-attr]


def test_same_path_twice_in_one_batch_keeps_the_last(catalog: Catalog) -> None:
    result = catalog.write_batch([image("/r/a.jpg", 1), image("/r/a.jpg", 2)])
    assert result.file_ids[0] == result.file_ids[1]
    assert len(result.deltas[IMG].added_ids) == 1 and len(result.deltas[IMG].removed_ids) == 0
    ids = catalog.segment_ids(IMG).ids
    assert len(ids) == 1
    stored = catalog.vectors_by_ids(IMG, ids).vectors[0]
    np.testing.assert_array_equal(stored, vec(2))


def test_segment_ids_are_never_reused(catalog: Catalog) -> None:
    first = catalog.write_batch([image("/r/a.jpg", 1)])
    catalog.delete_files(list(first.file_ids))
    second = catalog.write_batch([image("/r/b.jpg", 2)])
    assert second.deltas[IMG].added_ids[0] > first.deltas[IMG].added_ids[0]


def test_reuse_by_content_hash_needs_same_modality_and_model(catalog: Catalog) -> None:
    catalog.write_batch([video("/r/v.mp4", content="same")])
    stored = catalog.segments_for_hash("same", VID, "vid-1")
    assert stored is not None and [s.start_s for s in stored] == [0.0, 10.0, 20.0]
    np.testing.assert_array_equal(stored[1].vector, vec(51))
    audio = catalog.segments_for_hash("same", AUD, "aud-1")
    assert audio is not None and len(audio) == 2
    assert catalog.segments_for_hash("same", VID, "another-model") is None
    assert catalog.segments_for_hash("other", VID, "vid-1") is None


def test_a_failure_is_recorded_and_drops_old_segments(catalog: Catalog) -> None:
    catalog.write_batch([image("/r/a.jpg", 1)])
    failed = FailedFile("/r/a.jpg", "/r", 5, 6, "truncated", "ends early", modality=IMG)
    result = catalog.record_failure(failed)
    assert len(result.deltas[IMG].removed_ids) == 1
    record = catalog.file_by_path("/r/a.jpg")
    assert record is not None and record.status is FileStatus.FAILED
    assert (record.reason, record.detail) == ("truncated", "ends early")
    stats = catalog.stats()
    assert stats.failures_by_reason == {"truncated": 1}
    assert [f.path for f in stats.failed_files] == ["/r/a.jpg"]


def test_iter_files_under_a_folder_and_sweep(catalog: Catalog) -> None:
    paths = ["/r/a.jpg", "/r/sub/b.jpg", "/r2/c.jpg", "/rx.jpg", "/r/sub2/d.jpg"]
    catalog.write_batch([image(p, i, root="/r") for i, p in enumerate(paths)])
    assert [f.path for f in catalog.iter_files("/r")] == [
        "/r/a.jpg",
        "/r/sub/b.jpg",
        "/r/sub2/d.jpg",
    ]
    assert [f.path for f in catalog.iter_files("/r/sub/", page=1)] == ["/r/sub/b.jpg"]
    assert len(list(catalog.iter_files(page=2))) == 5
    gone = [f.id for f in catalog.iter_files("/r/sub")]
    result = catalog.delete_files(gone)
    assert len(result.deltas[IMG].removed_ids) == 1
    assert catalog.file_by_path("/r/sub/b.jpg") is None
    assert len(catalog.segment_ids(IMG).ids) == 4
    assert catalog.integrity_check() == []


def test_a_model_change_is_refused_and_deletes_nothing(catalog: Catalog) -> None:
    catalog.write_batch([video("/r/v.mp4"), image("/r/a.jpg", 1)])
    unchanged = catalog.set_modality(AUD, "aud-1", "1", DIM)
    assert not unchanged.changed
    with pytest.raises(ModelChangedError, match="--reembed") as refused:
        catalog.set_modality(AUD, "aud-2", "1", 16)
    assert refused.value.exit_code == 2
    assert len(catalog.segment_ids(AUD).ids) == 2
    state = catalog.modality_state(AUD)
    assert state is not None and (state.model_id, state.dim) == ("aud-1", DIM)
    # a new preprocessing version keeps every stored vector; new ones are made with it
    bumped = catalog.set_modality(VID, "vid-1", "2")
    assert not bumped.changed and len(catalog.segment_ids(VID).ids) == 3
    assert catalog.modality_state(VID).preprocess_version == "2"  # type: ignore[union-attr]
    assert catalog.outdated_files(VID) == 1
    assert catalog.file_by_path("/r/v.mp4").status is FileStatus.INDEXED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        (NewSegment(IMG, 0, 0, "img-OTHER", vec(1)), "model"),
        (NewSegment(IMG, 0, 0, "img-1", np.ones(3, dtype=np.float32)), "dimensions"),
        (NewSegment(IMG, 0, 0, "img-1", np.full(DIM, np.nan, dtype=np.float32)), "finite"),
    ],
)
def test_bad_segments_roll_back_the_whole_batch(
    catalog: Catalog, segment: NewSegment, message: str
) -> None:
    bad = IndexedFile("/r/bad.jpg", "/r", 1, 1, "hb", IMG, (segment,))
    with pytest.raises(CatalogError, match=message) as err:
        catalog.write_batch([image("/r/good.jpg", 1), bad])
    assert err.value.hint
    assert catalog.file_by_path("/r/good.jpg") is None
    assert catalog.modality_state(IMG).generation == 0  # type: ignore[union-attr]


def test_unregistered_modality_and_relative_paths_are_refused(tmp_path: Path) -> None:
    with Catalog(tmp_path / "c.sqlite", create=True) as cat:
        with pytest.raises(CatalogError, match="set_modality"):
            cat.write_batch([image("/r/a.jpg")])
        with pytest.raises(CatalogError, match="absolute"):
            cat.write_batch([image("r/a.jpg")])


def test_stream_and_fetch_vectors(catalog: Catalog) -> None:
    catalog.write_batch([image(f"/r/{i}.jpg", i) for i in range(10)])
    chunks = list(catalog.stream_vectors(IMG, chunk_rows=4))
    assert [len(c.ids) for c in chunks] == [4, 4, 2]
    assert {c.generation for c in chunks} == {1}
    ids = np.concatenate([c.ids for c in chunks])
    assert list(ids) == sorted(ids)
    np.testing.assert_array_equal(chunks[0].vectors[0], vec(0))
    some = catalog.vectors_by_ids(IMG, [int(ids[3]), int(ids[1]), 999_999])
    assert list(some.ids) == [ids[1], ids[3]]
    empty = list(catalog.stream_vectors(THERMAL := Modality.THERMAL))
    assert len(empty) == 1 and empty[0].ids.size == 0, THERMAL
    sample = catalog.sample_vectors(IMG, 5)
    assert sample.vectors.shape == (5, DIM)


def test_filters_for_search(catalog: Catalog) -> None:
    batch = [
        image("/r/holiday/a.jpg", 1),
        image("/r/work/b.JPG", 2),
        image("/r/holiday/c.png", 3),
        video("/r/holiday/v.mp4", seconds=3),
    ]
    catalog.write_batch(batch)

    def files_matching(modality: Modality, where: SegmentFilter) -> set[str]:
        ids = catalog.segment_ids_matching(modality, where)
        return {hit.file.path for hit in catalog.segments_by_ids(ids).values()}

    assert files_matching(IMG, SegmentFilter(path_globs=("*.jpg",))) == {"/r/holiday/a.jpg"}
    assert files_matching(IMG, SegmentFilter(path_globs=("*.jpg", "*.JPG"))) == {
        "/r/holiday/a.jpg",
        "/r/work/b.JPG",
    }
    assert files_matching(IMG, SegmentFilter(under=("/r/holiday",))) == {
        "/r/holiday/a.jpg",
        "/r/holiday/c.png",
    }
    recent = SegmentFilter(modified_after=1002e-9, modified_before=1003e-9)
    assert files_matching(IMG, recent) == {"/r/work/b.JPG", "/r/holiday/c.png"}
    assert files_matching(VID, SegmentFilter(min_duration_s=20)) == {"/r/holiday/v.mp4"}
    assert files_matching(VID, SegmentFilter(max_duration_s=20)) == set()
    assert files_matching(IMG, SegmentFilter(min_duration_s=0)) == set()  # images: no duration
    all_video = catalog.segment_ids(VID).ids
    hits = catalog.segments_by_ids(all_video, SegmentFilter(modalities=(VID,)))
    assert len(hits) == 3
    first = hits[int(all_video[1])]
    assert (first.segment.start_s, first.segment.end_s, first.file.duration_s) == (10, 20, 30)
    assert catalog.segments_by_ids(all_video, SegmentFilter(modalities=(IMG,))) == {}


def test_undecodable_file_names_round_trip(catalog: Catalog) -> None:
    odd = os.fsdecode(b"/r/caf\xe9 \n tab\t.jpg")  # latin-1 byte: not UTF-8
    catalog.write_batch([image(odd, 1)])
    record = catalog.file_by_path(odd)
    assert record is not None and record.path == odd
    assert [f.path for f in catalog.iter_files("/r")] == [odd]
    ids = catalog.segment_ids_matching(IMG, SegmentFilter(path_globs=("*caf*",)))
    assert len(ids) == 1


def test_runs_and_stats(catalog: Catalog) -> None:
    catalog.write_batch([image("/r/a.jpg", 1), video("/r/v.mp4")])
    catalog.record_failure(FailedFile("/r/bad.mp4", "/r", 1, 1, "corrupt", "moov atom not found"))
    first = catalog.start_run(["/r"])
    second = catalog.start_run(["/r"])  # the first one never finished: interrupted
    catalog.finish_run(second, RunCounts(added=2, failed=1))
    run = catalog.last_run()
    assert run is not None and run.id == second and run.status == "finished"
    assert run.counts == RunCounts(added=2, failed=1) and run.roots == ("/r",)
    assert first != second
    stats = catalog.stats()
    assert (stats.files, stats.segments) == (3, 6)
    per = {m.modality: m for m in stats.modalities}
    assert per[VID].files == {FileStatus.INDEXED: 1} and per[VID].segments == 3
    assert per[AUD].segments == 2 and per[AUD].files == {}
    image_state = per[IMG].state
    assert image_state is not None and image_state.model_id == "img-1"
    assert stats.failures_by_reason == {"corrupt": 1}
    assert stats.roots[0].root == "/r" and stats.roots[0].files == 3
    assert stats.catalog_bytes > 0


def test_content_hash_is_blake2b_of_the_bytes(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3 << 20)
    media = tmp_path / "m.bin"
    media.write_bytes(data)
    assert hash_file(media) == "blake2b256:" + hashlib.blake2b(data, digest_size=32).hexdigest()


def test_opening_something_else_fails_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no catalog") as err:
        Catalog(tmp_path / "absent.sqlite")
    assert "lbsearch index" in err.value.hint
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE t (x)")
    with pytest.raises(CatalogError, match="not an lbsearch catalog"):
        Catalog(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CatalogError, match="damaged") as err:
        Catalog(junk)
    assert "move catalog.sqlite away" in err.value.hint


def test_a_reader_never_sees_a_catalog_half_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lbsearch status` while the first `lbsearch index` starts: no catalog yet, or a whole one
    (it used to find an SQLite file without its schema and call it a foreign file)."""
    import threading

    from lbsearch.catalog import schema

    building, release = threading.Event(), threading.Event()
    migrate = schema.migrate

    def slow_migrate(*args: object, **kwargs: object) -> list[int]:
        building.set()
        assert release.wait(30)
        return migrate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(schema, "migrate", slow_migrate)
    path = tmp_path / "catalog.sqlite"
    created: list[Catalog] = []
    creator = threading.Thread(target=lambda: created.append(Catalog(path, create=True)))
    creator.start()
    try:
        assert building.wait(30)
        with pytest.raises(CatalogError, match="no catalog database here"):
            Catalog(path)
    finally:
        release.set()
        creator.join(30)
    with created[0], Catalog(path) as reader:
        assert reader.library_id == created[0].library_id
    assert sorted(p.name for p in tmp_path.iterdir() if ".new" in p.name) == []


def test_a_second_creator_keeps_the_first_ones_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with Catalog(path, create=True) as first, Catalog(path, create=True) as second:
        assert second.library_id == first.library_id
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # a file left by a creator of an older lbsearch that died at once
    with Catalog(empty, create=True) as made:
        assert made.schema_version == 3


def test_a_draft_left_by_a_killed_creator_is_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    abandoned = tmp_path / f"catalog.sqlite.{dead.stdout.strip()}-1.new"
    abandoned.write_bytes(b"half a catalog")
    running = tmp_path / f"catalog.sqlite.{os.getpid()}-1.new"  # a live creator's
    running.write_bytes(b"being written")
    with Catalog(tmp_path / "catalog.sqlite", create=True):
        pass
    assert not abandoned.exists() and running.exists()
