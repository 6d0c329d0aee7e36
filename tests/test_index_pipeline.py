"""The indexing pipeline with the fake encoder: incremental, idempotent, reuse, sweep, models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lbsearch.catalog import ModelChangedError
from lbsearch.config import Config
from lbsearch.indexers import plan as plan_module
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.indexers.progress import Event, FileFailed, Finished
from lbsearch.indexers.walk import WalkOptions
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.library import assert_library_consistent
from lbsearch.testing.samples import write_sample_media
from lbsearch.types import Modality

CONFIG = Config()  # the packaged defaults; the user's settings never reach tests


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    write_sample_media(root)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "readme.txt").write_text("not media")
    return root


def _index(
    library: Path, roots: list[Path], encoders: FakeEncoders, **kw
) -> tuple[Finished, list[Event]]:  # type: ignore[no-untyped-def]
    events: list[Event] = []
    with Library.open(library, config=CONFIG, write=True) as lib:
        done = run_index(roots, lib, encoders, CONFIG, IndexOptions(**kw), events.append)
    return done, events


def _consistent(library: Path) -> dict[Modality, int]:
    """Every catalog segment is in its index and vice versa; returns segment counts."""
    return assert_library_consistent(library, CONFIG)


def test_first_run_indexes_every_modality_and_records_failures(media: Path, tmp_path: Path) -> None:
    done, events = _index(tmp_path / "lib", [media], FakeEncoders())
    assert done.counts.added == 7 and done.counts.failed == 1
    assert [e.reason for e in events if isinstance(e, FileFailed)] == ["truncated"]
    counts = _consistent(tmp_path / "lib")
    assert (
        counts[Modality.IMAGE] == 2
        and counts[Modality.DEPTH] == 1
        and counts[Modality.THERMAL] == 1
    )
    assert counts[Modality.VIDEO] == 1
    # whistle, hum (14 s) and the video's sound track (one 12 s window, as its picture)
    assert counts[Modality.AUDIO] == 1 + 2 + 1


def test_second_run_reads_and_embeds_nothing(
    media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _index(tmp_path / "lib", [media], FakeEncoders())

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(plan_module, "hash_file", no_reading)
    monkeypatch.setattr(plan_module, "classify", no_reading)
    again = FakeEncoders()
    done, _ = _index(tmp_path / "lib", [media], again)
    assert sum(again.calls.values()) == 0
    assert done.counts.unchanged == 8 and done.counts.added == done.counts.updated == 0


def test_renamed_and_duplicated_files_reuse_vectors(media: Path, tmp_path: Path) -> None:
    _index(tmp_path / "lib", [media], FakeEncoders())
    (media / "bouncing_ball.mp4").rename(media / "ball_renamed.mp4")
    shutil.copy(media / "sunset_beach.jpg", media / "sunset_copy.jpg")
    encoders = FakeEncoders()
    done, _ = _index(tmp_path / "lib", [media], encoders)
    assert sum(encoders.calls.values()) == 0, "reused files are not embedded"
    assert done.counts.reused == 2 and done.counts.removed == 1
    with Library.open(tmp_path / "lib", config=CONFIG) as lib:
        assert lib.catalog.file_by_path(str(media / "bouncing_ball.mp4")) is None
        renamed = lib.catalog.file_by_path(str(media / "ball_renamed.mp4"))
        assert renamed is not None and renamed.modality is Modality.VIDEO
        assert (renamed.width, renamed.height) == (320, 240)
        assert renamed.duration_s == pytest.approx(12.0, abs=0.1)
    counts = _consistent(tmp_path / "lib")
    assert counts[Modality.IMAGE] == 3 and counts[Modality.AUDIO] == 4


def test_changed_file_is_embedded_again_and_deleted_file_swept(media: Path, tmp_path: Path) -> None:
    _index(tmp_path / "lib", [media], FakeEncoders())
    from lbsearch.testing.samples import write_audio

    write_audio(media / "whistle.wav", seconds=25.0, tone_hz=300.0)
    (media / "green_field.png").unlink()
    encoders = FakeEncoders()
    done, _ = _index(tmp_path / "lib", [media], encoders)
    assert done.counts.updated == 1 and done.counts.removed == 1
    assert dict(encoders.calls) == {Modality.AUDIO: 1}
    counts = _consistent(tmp_path / "lib")
    assert counts[Modality.AUDIO] == 3 + 2 + 1 and counts[Modality.IMAGE] == 1


def test_model_change_is_refused_then_re_embeds_only_that_modality(
    media: Path, tmp_path: Path
) -> None:
    _index(tmp_path / "lib", [media], FakeEncoders())
    before = _consistent(tmp_path / "lib")
    encoders = FakeEncoders(models={Modality.AUDIO: "fake/audio-v2"})
    with pytest.raises(ModelChangedError, match="--reembed"):
        _index(tmp_path / "lib", [media], encoders)
    assert _consistent(tmp_path / "lib") == before and not encoders.calls
    _index(tmp_path / "lib", [media], encoders, reembed=True)
    assert set(encoders.calls) == {Modality.AUDIO}
    assert encoders.segments[Modality.AUDIO] == 4
    with Library.open(tmp_path / "lib", config=CONFIG) as lib:
        assert lib.catalog.modality_state(Modality.AUDIO).model_id == "fake/audio-v2"  # type: ignore[union-attr]
    assert _consistent(tmp_path / "lib")[Modality.VIDEO] == 1


def test_roots_not_given_are_left_alone(media: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(media / "whistle.wav", other / "whistle.wav")
    _index(tmp_path / "lib", [media, other], FakeEncoders())
    done, _ = _index(tmp_path / "lib", [other], FakeEncoders())
    assert done.counts.removed == 0
    with Library.open(tmp_path / "lib", config=CONFIG) as lib:
        assert lib.catalog.file_by_path(str(media / "hum.flac")) is not None


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_ignore_rules(media: Path, tmp_path: Path) -> None:
    (media / ".hidden").mkdir()
    shutil.copy(media / "whistle.wav", media / ".hidden" / "secret.wav")
    (media / ".lbsearchignore").write_text("*.flac\n")
    _index(tmp_path / "lib", [media], FakeEncoders(), walk=WalkOptions(excludes=("thermal/",)))
    with Library.open(tmp_path / "lib", config=CONFIG) as lib:
        paths = {r.path for r in lib.catalog.iter_files()}
    assert str(media / "hum.flac") not in paths
    assert not any(".hidden" in p or "thermal" in p for p in paths)
    _index(tmp_path / "lib2", [media], FakeEncoders(), walk=WalkOptions(include_hidden=True))
    with Library.open(tmp_path / "lib2", config=CONFIG) as lib:
        assert lib.catalog.file_by_path(str(media / ".hidden" / "secret.wav")) is not None


def test_stop_keeps_work_done_and_next_run_completes(media: Path, tmp_path: Path) -> None:
    options = IndexOptions()
    options.stop.set()  # as if Ctrl-C came during the first decode
    with Library.open(tmp_path / "lib", config=CONFIG, write=True) as lib:
        done = run_index([media], lib, FakeEncoders(), CONFIG, options)
    assert done.interrupted
    finished, _ = _index(tmp_path / "lib", [media], FakeEncoders())
    assert not finished.interrupted
    assert finished.counts.added + done.counts.added == 7
    _consistent(tmp_path / "lib")
