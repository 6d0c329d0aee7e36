"""Video and audio thumbnails are decoded in the server's decode pool, not in its process, and
the worker verifies the file again (a path swapped after the server's check is refused)."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lbsearch import thumbnails
from lbsearch.catalog.records import FileRecord, FileStatus, SegmentRecord
from lbsearch.config import load_config
from lbsearch.errors import MediaError
from lbsearch.media.indexed import Roots
from lbsearch.media.shared_pool import SharedPool
from lbsearch.testing.samples import write_audio, write_video
from lbsearch.thumbnails import ThumbnailCache, ThumbnailError, ThumbnailTask
from lbsearch.types import Modality

pytestmark = pytest.mark.timeout(180)


def _record(path: Path, modality: Modality) -> FileRecord:
    st = path.stat()
    return FileRecord(
        id=1,
        path=str(path),
        root=str(path.parent),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        content_hash=f"{abs(hash(path.name)):032x}"[:32],
        modality=modality,
        status=FileStatus.INDEXED,
        reason=None,
        detail=None,
        duration_s=None,
        width=None,
        height=None,
        model_id="fake",
        indexed_at=0.0,
        ctime_ns=st.st_ctime_ns,
        dev=st.st_dev,
        ino=st.st_ino,
    )


@pytest.fixture
def pool() -> Iterator[SharedPool]:
    shared = SharedPool(load_config(), max_jobs=4, workers=1)
    yield shared
    shared.close()


def test_video_and_audio_thumbnails_are_not_decoded_in_the_server(
    tmp_path: Path, pool: SharedPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`render` in this process fails: only a worker (which imports its own) can draw them.
    Before, the server's thread drew them with this very function."""
    drawn_here: list[Modality] = []

    def not_here(handle: object, file: FileRecord, segment: SegmentRecord, *_: object) -> None:
        drawn_here.append(segment.modality)
        raise ThumbnailError("drawn in the server's process")

    monkeypatch.setattr(thumbnails, "render", not_here)
    video = write_video(tmp_path / "ball.mp4", seconds=6.0)
    sound = write_audio(tmp_path / "tone.wav", seconds=3.0, tone_hz=440.0)
    cache = ThumbnailCache(tmp_path / "library", load_config(), pool=lambda: pool)
    roots = Roots.of([str(tmp_path)])
    for path, modality in ((video, Modality.VIDEO), (sound, Modality.AUDIO)):
        segment = SegmentRecord(1, 1, modality, 0.0, 3.0, "fake")
        data = cache.get(_record(path, modality), segment, roots, 160).data
        assert data[:2] == b"\xff\xd8", "a JPEG"
    assert drawn_here == []
    # pictures stay in the server's thread (bounded by the pixel limit)
    picture = tmp_path / "p.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(picture)
    with pytest.raises(ThumbnailError, match="server's process"):
        cache.get(
            _record(picture, Modality.IMAGE),
            SegmentRecord(2, 2, Modality.IMAGE, 0, 0, "fake"),
            roots,
        )
    assert drawn_here == [Modality.IMAGE]


def test_the_worker_refuses_a_file_swapped_after_the_servers_check(tmp_path: Path) -> None:
    """Same size and mtime, another inode: the worker's own open and fstat refuse it."""
    video = write_video(tmp_path / "ball.mp4", seconds=4.0)
    record = _record(video, Modality.VIDEO)
    task = ThumbnailTask(
        record, SegmentRecord(1, 1, Modality.VIDEO, 0, 4, "fake"), 160, Roots.of([str(tmp_path)])
    )
    assert task.run(load_config())[:2] == b"\xff\xd8"
    other = tmp_path / "other.mp4"
    other.write_bytes(video.read_bytes())
    os.utime(other, ns=(record.mtime_ns, record.mtime_ns))
    other.replace(video)
    with pytest.raises(MediaError) as raised:
        task.run(load_config())
    assert raised.value.reason == "vanished"
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    linked = ThumbnailTask(
        _record(link, Modality.VIDEO), task.segment, 160, Roots.of([str(tmp_path)])
    )
    with pytest.raises(MediaError, match="cannot be opened"):
        linked.run(load_config())


def test_a_video_thumbnail_from_the_pool_is_the_same_picture(
    tmp_path: Path, pool: SharedPool
) -> None:
    video = write_video(tmp_path / "ball.mp4", seconds=6.0)
    record, roots = _record(video, Modality.VIDEO), Roots.of([str(tmp_path)])
    segment = SegmentRecord(1, 1, Modality.VIDEO, 2.0, 4.0, "fake")
    pooled = ThumbnailCache(tmp_path / "a", load_config(), pool=lambda: pool)
    local = ThumbnailCache(tmp_path / "b", load_config())
    a = np.asarray(Image.open(io.BytesIO(pooled.get(record, segment, roots).data)))
    b = np.asarray(Image.open(io.BytesIO(local.get(record, segment, roots).data)))
    assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 1


def test_a_page_of_thumbnails_waits_for_places_and_leaves_uploads_theirs(tmp_path: Path) -> None:
    """Six video thumbnails at once through a pool of 2 places: all are drawn (before, four got
    PoolBusy, a 503), and they take at most one place, so an upload still finds its own."""
    shared = SharedPool(load_config(), max_jobs=2, workers=1)
    try:
        cache = ThumbnailCache(tmp_path / "library", load_config(), pool=lambda: shared)
        roots = Roots.of([str(tmp_path)])
        videos = [write_video(tmp_path / f"v{i}.mp4", seconds=2.0) for i in range(6)]
        drawn: list[bytes] = []
        busy_seen: list[int] = []

        def draw(video: Path) -> None:
            segment = SegmentRecord(1, 1, Modality.VIDEO, 0.0, 2.0, "fake")
            drawn.append(cache.get(_record(video, Modality.VIDEO), segment, roots, 160).data)

        threads = [threading.Thread(target=draw, args=(v,), daemon=True) for v in videos]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            busy_seen.append(shared.busy)
            time.sleep(0.01)
        assert len(drawn) == 6 and all(d[:2] == b"\xff\xd8" for d in drawn)
        assert max(busy_seen) <= 1, "thumbnails took the places uploads need"
    finally:
        shared.close()
