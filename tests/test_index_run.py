"""The index run's shape: no pool without work, duplicates within a run, hashing overlapping
decoding, failed videos told once."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from lbsearch.config import Config
from lbsearch.indexers import plan as plan_module
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.indexers.progress import (
    Event,
    FileDone,
    FileFailed,
    Finished,
    Warning_,
)
from lbsearch.library import Library
from lbsearch.media import pool as pool_module
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.library import assert_library_consistent
from lbsearch.testing.samples import write_audio, write_sample_media
from lbsearch.types import Modality

CONFIG = Config()  # the packaged defaults; the user's settings never reach tests
pytestmark = pytest.mark.timeout(300)


def _index(library: Path, root: Path, encoders: FakeEncoders) -> tuple[Finished, list[Event]]:
    events: list[Event] = []
    with Library.open(library, config=CONFIG, write=True) as lib:
        done = run_index([root], lib, encoders, CONFIG, IndexOptions(), events.append)
    return done, events


def test_a_rerun_with_nothing_to_decode_starts_no_decode_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = tmp_path / "media"
    write_sample_media(media)
    _index(tmp_path / "lib", media, FakeEncoders())
    shutil.copy(media / "sunset_beach.jpg", media / "sunset_copy.jpg")  # reused: no decoding

    class NoPool:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("a decode pool was started with nothing to decode")

    monkeypatch.setattr(pool_module, "DecodePool", NoPool)
    done, _ = _index(tmp_path / "lib", media, FakeEncoders())
    assert done.counts.unchanged == 7 and done.counts.reused == 1


def test_identical_files_in_one_run_are_decoded_and_embedded_once(tmp_path: Path) -> None:
    media = tmp_path / "media"
    write_sample_media(media)
    for name in ("sunset_beach.jpg", "whistle.wav", "bouncing_ball.mp4"):
        for copy in ("a", "b"):
            target = media / "copies" / copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(media / name, target)
    encoders = FakeEncoders()
    done, events = _index(tmp_path / "lib", media, encoders)
    assert done.counts.added == 7 + 6
    assert done.counts.reused == 6  # every copy reuses the first file's vectors
    # the same segments as indexing each distinct file once
    assert encoders.segments[Modality.IMAGE] == 2
    assert encoders.segments[Modality.VIDEO] == 1
    assert encoders.segments[Modality.AUDIO] == 1 + 2 + 1
    done_events = [e for e in events if isinstance(e, FileDone)]
    assert sum(e.reused for e in done_events) == 6
    counts = assert_library_consistent(tmp_path / "lib", CONFIG)
    assert counts[Modality.VIDEO] == 3  # one window per copy, stored for each path
    with Library.open(tmp_path / "lib", config=CONFIG) as lib:
        first = lib.catalog.file_by_path(str(media / "bouncing_ball.mp4"))
        copy = lib.catalog.file_by_path(str(media / "copies" / "b" / "bouncing_ball.mp4"))
        assert first is not None and copy is not None
        assert copy.duration_s == first.duration_s and copy.width == first.width


def test_hashing_overlaps_decoding_with_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    for i in range(3):
        write_audio(media / f"a{i}.wav", seconds=1.0, tone_hz=300.0 + 100 * i)
    write_audio(media / "z_big.wav", seconds=1.0, tone_hz=900.0)
    real_hash = plan_module.hash_file
    indexed_one = threading.Event()
    overlapped: list[bool] = []

    def slow_hash(path: Path) -> str:
        if path.name == "z_big.wav":  # a big file on a slow disk: still hashing when...
            overlapped.append(indexed_one.wait(timeout=60))  # ...the first files are indexed
        return real_hash(path)

    def progress(event: Event) -> None:
        events.append(event)
        if isinstance(event, FileDone):
            indexed_one.set()

    monkeypatch.setattr(plan_module, "hash_file", slow_hash)
    events: list[Event] = []
    config = dataclasses.replace(CONFIG, runtime=dataclasses.replace(CONFIG.runtime, batch_size=1))
    with Library.open(tmp_path / "lib", config=config, write=True) as lib:
        done = run_index([media], lib, FakeEncoders(), config, IndexOptions(), progress)
    assert done.counts.added == 4
    assert overlapped == [True], "nothing was indexed until every file was hashed"
    from lbsearch.indexers.progress import Hashed, Planned

    planned = next(e for e in events if isinstance(e, Planned))
    sizes = [p.stat().st_size for p in media.iterdir()]
    assert (planned.to_check, planned.check_bytes) == (4, sum(sizes))
    hashed = [e for e in events if isinstance(e, Hashed)]
    assert sorted(Path(e.path).name for e in hashed) == ["a0.wav", "a1.wav", "a2.wav", "z_big.wav"]
    assert sum(e.bytes for e in hashed) == sum(sizes)


def test_a_corrupt_video_is_one_failure_without_a_sound_track_warning(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "broken.mp4").write_bytes(
        np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    )
    done, events = _index(tmp_path / "lib", media, FakeEncoders())
    assert done.counts.failed == 1
    assert [e.reason for e in events if isinstance(e, FileFailed)] == ["corrupt"]
    assert [e for e in events if isinstance(e, Warning_)] == []
