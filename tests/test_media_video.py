"""Video: windows, frame indices, seeking, rotation, sound tracks, determinism."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import av
import media_factory as mf
import numpy as np
import pytest
import torch

from lbsearch.config import Config
from lbsearch.errors import MediaError
from lbsearch.media import decode, video
from lbsearch.media.video import FrameIndex, FrameReader, plan_windows, video_windows
from lbsearch.types import MediaSpec, Modality

CFG = Config()  # the packaged defaults; the user's settings never reach tests
VIDEO = MediaSpec(Modality.VIDEO)
AUDIO = MediaSpec(Modality.AUDIO)


def with_video(cfg: Config, **changes: object) -> Config:
    return dataclasses.replace(cfg, video=dataclasses.replace(cfg.video, **changes))


def linspace(first: int, last: int) -> tuple[int, ...]:
    return tuple(int(i) for i in np.floor(np.linspace(first, last, 8)))


def spans(items: list[Any]) -> list[float]:
    """start, end, start, end... of windows or segments (flat, for pytest.approx)."""
    return [t for item in items for t in (item.start_s, item.end_s)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("video")
    return {
        "short": mf.video(d / "short.mp4", 3.0, fps=10),  # 30 frames, B-frames (x264)
        "portrait": mf.video(d / "portrait.mp4", 1.0, fps=25, width=48, height=80, codec="mpeg4"),
        "long": mf.video(d / "long.mp4", 25.0, fps=10, width=80, height=60, gop=12),
        "sound": mf.video(d / "sound.mp4", 12.0, fps=8, with_audio=True),
        "odd_rate": mf.video(d / "ntsc.mkv", 2.0, fps=29.97, codec="libvpx-vp9"),
        "rotated": mf.video(d / "rotated.mp4", 1.0, fps=10, rotation=90),
    }


def test_one_window_uses_the_reference_indices(clips: dict[str, Path]) -> None:
    (window,) = video_windows(clips["short"], VIDEO, CFG)
    assert window.indices == linspace(0, 29)
    (seg,) = decode(clips["short"], VIDEO, CFG)
    assert seg.pixels.shape == (3, 8, 224, 224)
    assert seg.pixels.dtype == torch.float32
    assert (seg.start_s, seg.end_s) == pytest.approx((0.0, 3.0))


def test_windows_and_final_merge(clips: dict[str, Path]) -> None:
    windows = video_windows(clips["long"], VIDEO, CFG)  # 250 frames at 10 fps
    assert spans(windows) == pytest.approx([0, 10, 10, 25])
    assert windows[0].indices == linspace(0, 99)
    assert windows[1].indices == linspace(100, 249)  # the last 5 s merged into window 2
    segs = decode(clips["long"], VIDEO, CFG)
    assert spans(segs) == pytest.approx([0, 10, 10, 25])


def test_max_segments_spreads_windows(clips: dict[str, Path]) -> None:
    cfg = with_video(CFG, segment_seconds=1.0, max_segments=5)
    windows = video_windows(clips["long"], VIDEO, cfg)  # 25 one-second windows, keep 5
    assert [w.start_s for w in windows] == pytest.approx([0, 6, 12, 18, 24])
    assert windows[2].indices == linspace(120, 129)


def test_plan_windows_skips_empty_windows() -> None:
    times = np.array([0.0, 1.0, 2.0, 25.0, 26.0])  # nothing between 3 s and 25 s
    windows = plan_windows(times, 37.0, 10.0, 0, 8)
    assert spans(windows) == [0.0, 10.0, 20.0, 37.0]
    assert windows[1].indices == linspace(3, 4)


def test_frames_per_window_follow_the_spec(clips: dict[str, Path]) -> None:
    (seg,) = decode(clips["short"], MediaSpec(Modality.VIDEO, num_frames=4, image_size=56), CFG)
    assert seg.pixels.shape == (3, 4, 56, 56)


@pytest.mark.parametrize("segment_seconds", [10.0, 1.0])
def test_seeking_and_skipping_give_the_same_frames(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch, segment_seconds: float
) -> None:
    cfg = with_video(CFG, segment_seconds=segment_seconds)
    seeking = decode(clips["long"], VIDEO, cfg)
    monkeypatch.setattr(video, "SEEK_MIN_GAP", 10**9)  # decode every frame in order
    monkeypatch.setattr(video, "SKIP_NONREF", False)
    straight = decode(clips["long"], VIDEO, cfg)
    assert len(seeking) == len(straight)
    assert all(torch.equal(a.pixels, b.pixels) for a, b in zip(seeking, straight, strict=True))


def test_frame_reader_serves_requested_frames(clips: dict[str, Path]) -> None:
    with av.open(str(clips["long"])) as box:
        stream = box.streams.video[0]
        index = video.build_index(box, stream, clips["long"])
    assert isinstance(index, FrameIndex) and len(index.pts) == 250 and index.exact
    with av.open(str(clips["long"])) as box:
        stream = box.streams.video[0]
        sequential = [f.to_ndarray(format="rgb24") for f in box.decode(stream)]
    with av.open(str(clips["long"])) as box:
        reader = FrameReader(box, box.streams.video[0], index)
        wanted = [0, 0, 5, 60, 61, 200, 249]
        frames = reader.get(wanted)
    assert frames is not None
    assert all(np.array_equal(f, sequential[i]) for f, i in zip(frames, wanted, strict=True))


def test_portrait_and_odd_frame_rates(clips: dict[str, Path]) -> None:
    for key in ("portrait", "odd_rate"):
        (seg,) = decode(clips[key], VIDEO, CFG)
        assert seg.pixels.shape == (3, 8, 224, 224)
    (window,) = video_windows(clips["odd_rate"], VIDEO, CFG)
    assert window.indices == linspace(0, 59)


def test_display_rotation_is_applied(clips: dict[str, Path]) -> None:
    with av.open(str(clips["rotated"])) as box:
        stream = box.streams.video[0]
        index = video.build_index(box, stream, clips["rotated"])
    with av.open(str(clips["rotated"])) as box:
        frames = FrameReader(box, box.streams.video[0], index).get([0])
    assert frames is not None and frames[0].shape == (64, 48, 3)  # stored 64 wide, shown upright


def test_sound_track_has_the_video_timeline(clips: dict[str, Path]) -> None:
    segs = decode(clips["sound"], AUDIO, CFG)
    assert [s.modality for s in segs] == [Modality.AUDIO]  # one 12 s video window
    assert segs[0].start_s == pytest.approx(0.0)
    assert segs[-1].end_s == pytest.approx(12.0, abs=0.1)
    assert segs[0].pixels.shape == (3, 112, 1036)


def test_video_without_sound_track(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError) as info:
        decode(clips["short"], AUDIO, CFG)
    assert info.value.reason == "no_audio"


def test_deterministic(clips: dict[str, Path]) -> None:
    a, b = decode(clips["long"], VIDEO, CFG), decode(clips["long"], VIDEO, CFG)
    assert all(torch.equal(x.pixels, y.pixels) for x, y in zip(a, b, strict=True))


def test_sound_track_windows_share_the_picture_s_spans(tmp_path: Path) -> None:
    path = mf.video(tmp_path / "talk.mp4", 35.0, fps=4, with_audio=True)
    pictures, sounds = decode(path, VIDEO, CFG), decode(path, AUDIO, CFG)
    assert spans(sounds) == pytest.approx(spans(pictures))  # 0-10, 10-20, 20-35
    assert len(sounds) == 3
    assert all(s.pixels.shape == (3, 112, 1036) for s in sounds)
    # each window hears the 10.36 s centred on its picture's span, moved inside the track
    # at its ends: the middle window starts 0.18 s before its picture
    from lbsearch.media.audio import FRAME_SHIFT_S, sound_window_frames

    assert FRAME_SHIFT_S == 0.01
    windows = [(s.start_s, s.end_s) for s in pictures]
    firsts = [sound_window_frames(a, b, 0.0, 3498, 1036) for a, b in windows]
    assert firsts == [(0, 1036), (982, 2018), (2232, 3268)]  # the last one: its central 10.36 s
    assert sound_window_frames(20.0, 35.0, 0.0, 3000, 1036) == (1964, 3000)  # track ends early
    assert sound_window_frames(20.0, 35.0, 0.0, 1900, 1036) is None  # the track ends at 19 s
    assert sound_window_frames(0.0, 10.0, 0.0, 800, 1036) == (0, 800)  # short track: tiled


def test_short_window_config_still_hears_the_window(tmp_path: Path) -> None:
    path = mf.video(tmp_path / "clip.mp4", 12.0, fps=4, with_audio=True)
    cfg = with_video(CFG, segment_seconds=4.0)
    pictures, sounds = decode(path, VIDEO, cfg), decode(path, AUDIO, cfg)
    assert spans(sounds) == pytest.approx(spans(pictures))
    assert not torch.equal(sounds[0].pixels, sounds[1].pixels)
