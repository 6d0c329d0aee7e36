"""`lbsearch cut` on generated videos whose picture and sound are known per 10 s window."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from lbsearch.errors import UsageError
from lbsearch.library import LIBRARY_ENV
from lbsearch.media.clip import cut
from lbsearch.media.clip_plan import exact_copy_length
from lbsearch.testing.windows import COLOURS, TONES_HZ, frame_grey, window_video
from tests.media_factory import audio_samples

FPS = 10
RATE = 16000
runner = CliRunner()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 s, 10 fps, a key frame every 2.5 s; windows of 10 s with their own colour and tone."""
    return window_video(tmp_path_factory.mktemp("cut") / "windows.mp4", 30, fps=FPS, gop=25)


def _pictures(path: Path) -> tuple[list[float], np.ndarray]:
    """Frame times and the first frame (RGB) of a clip."""
    with av.open(str(path)) as box:
        frames = list(box.decode(video=0))
        return [float(f.time) for f in frames], frames[0].to_ndarray(format="rgb24")


def _sound(path: Path) -> np.ndarray:
    with av.open(str(path)) as box:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in box.decode(audio=0)])


def _tone_switch(samples: np.ndarray, to_hz: float, block: int = 160) -> float:
    """Seconds into `samples` from which the dominant tone is `to_hz` (10 ms blocks)."""
    hz = np.array(
        [_dominant_hz(samples[i : i + block]) for i in range(0, len(samples) - block, block)]
    )
    steady = np.abs(hz - to_hz) < 60
    for i in range(len(hz) - 5):
        if steady[i : i + 5].all():
            return i * block / RATE
    raise AssertionError(f"no {to_hz} Hz tone")


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * RATE / len(samples))


def _grey_index(frame: np.ndarray) -> int:
    """Which frame (mod 25) a decoded picture is, from its grey bottom half."""
    grey = float(frame[frame.shape[0] * 3 // 4 :].mean())
    return round(grey / 10)


@pytest.mark.parametrize(
    ("start", "end", "method"),
    [(5.0, 15.0, "copy"), (5.37, 14.0, "libx264"), (12.5, 17.0, "copy"), (0.0, 3.3, "copy")],
)
def test_clip_starts_on_the_frame_shown_at_start(
    source: Path, tmp_path: Path, start: float, end: float, method: str
) -> None:
    result = cut(source, start, end, tmp_path / "clip.mp4")
    assert result.video == method, "stream copy exactly when a key frame is shown at the start"
    times, first = _pictures(result.path)
    shown = int(start * FPS + 1e-6)  # the frame on screen at `start`
    assert _grey_index(first) == frame_grey(shown) // 10
    assert np.abs(first[2, 2].astype(int) - COLOURS[int(start // 10)]).max() < 12
    assert times[0] == 0.0
    duration = times[-1] + 1 / FPS
    assert abs(duration - (end - start)) <= 1 / FPS + 1e-6


@pytest.mark.parametrize(("start", "end"), [(5.0, 15.0), (5.37, 14.0), (7.77, 12.0)])
def test_clip_sound_is_present_and_aligned(
    source: Path, tmp_path: Path, start: float, end: float
) -> None:
    result = cut(source, start, end, tmp_path / "clip.mp4")
    assert result.audio == "aac"
    sound = _sound(result.path)
    assert abs(len(sound) / RATE - (end - start)) < 0.08  # AAC pads the last 1024-sample frame
    assert _dominant_hz(sound[800:2400]) == pytest.approx(TONES_HZ[0], abs=15)
    # the tone changes at 10 s in the source: (10 - start) s into the clip, to within a block
    assert _tone_switch(sound, TONES_HZ[1]) == pytest.approx(10.0 - result.start_s, abs=0.015)


def test_pad_widens_the_span_and_is_clamped_to_the_file(source: Path, tmp_path: Path) -> None:
    result = cut(source, 12.0, 13.0, tmp_path / "pad.mp4", pad_s=1.5)
    times, first = _pictures(result.path)
    assert (result.start_s, result.end_s) == (10.5, 14.5)
    assert _grey_index(first) == frame_grey(105) // 10
    assert abs(times[-1] + 1 / FPS - 4.0) <= 1 / FPS + 1e-6
    clamped = cut(source, 1.0, 29.5, tmp_path / "clamped.mp4", pad_s=5)
    assert (clamped.start_s, clamped.end_s) == (0.0, 30.0)


def test_sound_only_file_is_cut_to_the_sample(tmp_path: Path) -> None:
    t = np.arange(4 * RATE) / RATE
    tone = np.where(t < 2.0, 0.4 * np.sin(2 * np.pi * 500 * t), 0.4 * np.sin(2 * np.pi * 1000 * t))
    wav = audio_samples(tmp_path / "tone.wav", tone.reshape(1, -1).astype(np.float32), RATE)
    result = cut(wav, 1.25, 3.0, tmp_path / "part.wav")
    sound = _sound(result.path)
    assert result.video is None
    assert len(sound) == round(1.75 * RATE)
    assert _tone_switch(sound.astype(np.float32), 1000) == pytest.approx(0.75, abs=0.015)


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [(-1.0, 5.0, "before the file's start"), (5.0, 31.0, "past the end"), (8.0, 8.0, "not after")],
)
def test_bad_spans_are_usage_errors(
    source: Path, tmp_path: Path, start: float, end: float, words: str
) -> None:
    out = tmp_path / "clip.mp4"
    with pytest.raises(UsageError, match=words):
        cut(source, start, end, out)
    result = runner.invoke(
        app, ["cut", str(source), f"--start={start}", f"--end={end}", "-o", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_never_overwrites_without_force(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"keep me")
    args = ["cut", str(source), "--start", "1", "--end", "2", "-o", str(out)]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "--force" in refused.output
    assert out.read_bytes() == b"keep me"
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert _pictures(out)[0][-1] == pytest.approx(0.9)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary left"


def test_a_file_that_is_not_indexed_can_be_cut(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "no-library-here"))
    out = tmp_path / "clip.mkv"
    result = runner.invoke(app, ["cut", str(source), "--start", "2", "--end", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert not (tmp_path / "no-library-here").exists()
    assert len(_pictures(out)[0]) == 20


def test_unknown_suffix_is_a_usage_error(source: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="suffix"):
        cut(source, 1, 2, tmp_path / "clip.xyz")


# exact_copy_length on planted packet lists: (pts, key frame?) in decode order, pts in frames


def test_copy_when_the_key_frame_is_shown_at_start() -> None:
    packets = [(0, True), (1, False), (2, False), (3, False), (4, True)]
    assert exact_copy_length(packets, 0, 4) == 4
    assert exact_copy_length(packets, 0, 3) == 3


def test_no_copy_when_another_frame_is_shown_at_start() -> None:
    assert exact_copy_length([(0, True), (1, False), (2, False)], 1, 2) == 0


def test_no_copy_when_a_b_frame_needs_a_frame_past_the_end() -> None:
    # decode order I0 P3 B1 B2 P6 B4 B5: ending at 5 needs P6 (shown at 6) to decode B4
    packets = [(0, True), (3, False), (1, False), (2, False), (6, False), (4, False), (5, False)]
    assert exact_copy_length(packets, 0, 5) == 0
    assert exact_copy_length(packets, 0, 4) == 4  # I0 P3 B1 B2 hold exactly frames 0-3


def test_no_copy_for_an_open_gop() -> None:
    # leading B-frames after the key frame show before it: they need the previous GOP
    assert exact_copy_length([(2, True), (0, False), (1, False), (3, False)], 2, 4) == 0


def test_clip_names_follow_the_file_and_span_and_never_collide(tmp_path: Path) -> None:
    from lbsearch.media.clip import clip_path

    first = clip_path(tmp_path, Path("/m/park.MOV"), 40.0, 50.25, video=True)
    assert first.name == "park_0040.0-0050.2.mov"
    first.write_bytes(b"")
    assert clip_path(tmp_path, Path("/m/park.MOV"), 40.0, 50.25, True).name.endswith("-2.mov")
    assert clip_path(tmp_path, Path("/m/a.avi"), 0, 5, video=True).suffix == ".mp4"
    assert clip_path(tmp_path, Path("/m/song.wav"), 0, 5, video=False).suffix == ".wav"
    assert clip_path(tmp_path, Path("/m/song.aiff"), 0, 5, video=False).suffix == ".m4a"


@pytest.mark.parametrize("start", [2.0, 2.35])  # a key frame every second: copy, then re-encode
def test_a_phone_videos_rotation_is_kept(tmp_path: Path, start: float) -> None:
    from tests.media_factory import video

    src = video(tmp_path / "phone.mp4", 6, fps=10, rotation=90, gop=10, with_audio=True)
    result = cut(src, start, 4.0, tmp_path / "clip.mp4")
    assert result.video == ("copy" if start == 2.0 else "libx264")
    with av.open(str(result.path)) as box:
        assert next(box.decode(video=0)).rotation == 90


def test_a_video_without_sound_gives_a_clip_without_sound(tmp_path: Path) -> None:
    src = window_video(tmp_path / "silent.mp4", 12, with_audio=False)
    result = cut(src, 1.0, 3.0, tmp_path / "clip.mkv")
    assert result.audio is None
    with av.open(str(result.path)) as box:
        assert not box.streams.audio and len(list(box.decode(video=0))) == 20


def test_a_videos_sound_alone_to_an_audio_suffix(source: Path, tmp_path: Path) -> None:
    result = cut(source, 9.0, 11.0, tmp_path / "sound.m4a")
    assert result.video is None and result.audio == "aac"
    sound = _sound(result.path)
    assert _tone_switch(sound, TONES_HZ[1]) == pytest.approx(1.0, abs=0.015)
