"""lbsearch.thumbnails: what each modality's thumbnail shows, and refusing changed files."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lbsearch.catalog.records import FileRecord, FileStatus, SegmentRecord
from lbsearch.config import Config, load_config
from lbsearch.media.indexed import Roots
from lbsearch.testing.samples import write_audio, write_video
from lbsearch.thumbnails import (
    ThumbnailCache,
    ThumbnailError,
    colour_scale,
    false_colour,
    fixed_side,
    render,
)
from lbsearch.types import Modality


def _record(path: Path, modality: Modality) -> FileRecord:
    st = path.stat()
    return FileRecord(
        id=1,
        path=str(path),
        root=str(path.parent),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        content_hash="ab" + "0" * 30,
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


def _render(record: FileRecord, segment: SegmentRecord, side: int, config: Config) -> Image.Image:
    with Path(record.path).open("rb") as handle:
        return render(handle, record, segment, side, config)


def _segment(modality: Modality, start: float, end: float) -> SegmentRecord:
    return SegmentRecord(1, 1, modality, start, end, "fake")


def _frame_at(path: Path, seconds: float) -> np.ndarray:
    """The first frame at or after `seconds`, decoded from the start (no seeking)."""
    with av.open(str(path)) as box:
        for frame in box.decode(video=0):
            if frame.time is not None and frame.time >= seconds - 1e-6:
                return np.asarray(frame.to_image().convert("RGB"), dtype=np.float64)
    raise AssertionError(f"no frame at {seconds} s")


def test_video_thumbnail_is_the_frame_at_the_segments_middle(tmp_path: Path) -> None:
    video = write_video(tmp_path / "ball.mp4", seconds=12.0)
    record, config = _record(video, Modality.VIDEO), load_config()
    early = np.asarray(_render(record, _segment(Modality.VIDEO, 0, 4), 640, config), np.float64)
    late = np.asarray(_render(record, _segment(Modality.VIDEO, 8, 12), 640, config), np.float64)
    assert np.abs(early - _frame_at(video, 2.0)).mean() < 4  # JPEG-free, so near exact
    assert np.abs(late - _frame_at(video, 10.0)).mean() < 4
    assert np.abs(early - late).mean() > 2, "the ball moved between the two middles"


def test_audio_thumbnail_is_a_spectrogram_with_the_tone(tmp_path: Path) -> None:
    low = write_audio(tmp_path / "low.wav", seconds=4.0, tone_hz=220.0)
    high = write_audio(tmp_path / "high.wav", seconds=4.0, tone_hz=3000.0)
    config = load_config()
    rows = []
    for path in (low, high):
        picture = _render(
            _record(path, Modality.AUDIO), _segment(Modality.AUDIO, 0, 4), 320, config
        )
        assert picture.width > picture.height
        brightness = np.asarray(picture.convert("L"), dtype=np.float64).mean(axis=1)
        rows.append(int(np.argmax(brightness)))  # the tone's row (low pitches at the bottom)
    assert rows[1] < rows[0], "a higher tone shows higher up"


def test_depth_is_false_colour_stretched_between_near_and_far() -> None:
    depth = np.tile(np.linspace(500, 4000, 64), (16, 1))
    depth[0, 0] = 0  # no reading
    rgb = np.asarray(false_colour(depth))
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    assert tuple(rgb[5, 0]) == tuple(colour_scale(np.array(0.0)))
    assert tuple(rgb[5, -1]) == tuple(colour_scale(np.array(1.0)))
    assert np.abs(rgb[..., 0].astype(int) - rgb[..., 2]).mean() > 20, "colour, not grey"


def test_a_changed_file_gets_no_thumbnail(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (50, 40), (200, 10, 10)).save(path)
    record = _record(path, Modality.IMAGE)
    cache = ThumbnailCache(tmp_path / "library", load_config())
    Image.new("RGB", (50, 40), (10, 10, 200)).save(path)
    os.utime(path, ns=(record.mtime_ns + 10**9, record.mtime_ns + 10**9))
    with pytest.raises(ThumbnailError, match="changed since it was indexed"):
        cache.get(record, _segment(Modality.IMAGE, 0, 0), Roots.of([str(tmp_path)]))
    assert not cache.folder.exists() or not any(cache.folder.rglob("*.jpg"))


def test_picture_thumbnails_are_scaled_and_cached(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (1200, 600), (20, 200, 20)).save(path)
    record = _record(path, Modality.IMAGE)
    cache = ThumbnailCache(tmp_path / "library", load_config())
    roots = Roots.of([str(tmp_path)])
    thumb = cache.get(record, _segment(Modality.IMAGE, 0, 0), roots, 320)
    cached = cache.path_for(record, _segment(Modality.IMAGE, 0, 0), 320)
    assert cached.read_bytes() == thumb.data
    assert cached.is_relative_to(tmp_path / "library" / "cache" / "thumbnails")
    with Image.open(cached) as picture:
        assert picture.size == (320, 160)


def test_sizes_round_up_to_three_fixed_ones() -> None:
    assert [fixed_side(n) for n in (1, 16, 160, 161, 320, 321, 640, 641, 99999)] == [
        160,
        160,
        160,
        320,
        320,
        640,
        640,
        640,
        640,
    ]


def test_the_cache_is_an_lru_capped_in_bytes(tmp_path: Path) -> None:
    """Every size from 16 to 1024 once was a file of its own, never removed: now at most
    three sizes per segment, and the least recently used go once the cap is reached."""
    roots = Roots.of([str(tmp_path)])
    records = []
    for i in range(6):
        path = tmp_path / f"p{i}.png"
        pixels = np.random.default_rng(i).integers(0, 255, (300, 300, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        records.append(replace(_record(path, Modality.IMAGE), content_hash=f"{i:02d}" * 16))
    one = len(_jpeg_of(records[0], roots, tmp_path / "probe"))
    cache = ThumbnailCache(tmp_path / "library", load_config(), max_bytes=int(3.5 * one))
    segment = _segment(Modality.IMAGE, 0, 0)
    for size in range(16, 1025, 7):
        cache.get(records[0], segment, roots, size)
    assert len(list(cache.folder.rglob("*.jpg"))) <= 3
    for record in records:
        cache.get(record, segment, roots, 320)
        cache.get(records[0], segment, roots, 320)  # kept in use: never the oldest
    assert cache.used_bytes <= 3.5 * one
    on_disk = sum(p.stat().st_size for p in cache.folder.rglob("*.jpg"))
    assert on_disk == cache.used_bytes
    assert cache.path_for(records[0], segment, 320).exists()
    assert not cache.path_for(records[1], segment, 320).exists()
    reopened = ThumbnailCache(tmp_path / "library", load_config(), max_bytes=one)
    assert reopened.used_bytes <= one, "the cap holds for what earlier runs left"


def test_a_deleted_files_thumbnails_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (50, 40), (200, 10, 10)).save(path)
    record, roots = _record(path, Modality.IMAGE), Roots.of([str(tmp_path)])
    cache = ThumbnailCache(tmp_path / "library", load_config())
    for side in (160, 320):
        cache.get(record, _segment(Modality.IMAGE, 0, 0), roots, side)
    assert len(list(cache.folder.rglob("*.jpg"))) == 2
    path.unlink()
    with pytest.raises(ThumbnailError):
        cache.get(record, _segment(Modality.IMAGE, 0, 0), roots, 160)
    assert not list(cache.folder.rglob("*.jpg")) and cache.used_bytes == 0


def _jpeg_of(record: FileRecord, roots: Roots, folder: Path) -> bytes:
    return (
        ThumbnailCache(folder, load_config())
        .get(record, _segment(Modality.IMAGE, 0, 0), roots, 320)
        .data
    )
