"""Audio: formats, rates, first channel, windows and tiling, resampling, determinism."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest
import torch

from lbsearch.config import Config
from lbsearch.errors import MediaError
from lbsearch.media import decode
from lbsearch.media.audio import plan_audio_windows
from lbsearch.media.resample import SincResampler, resample
from lbsearch.types import MediaSpec, Modality

CFG = Config()  # the packaged defaults; the user's settings never reach tests
AUDIO = MediaSpec(Modality.AUDIO)


def with_audio(cfg: Config, **changes: object) -> Config:
    return dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, **changes))


@pytest.mark.parametrize(
    ("name", "rate", "channels"),
    [
        ("a.wav", 16000, 1),
        ("a.wav", 44100, 2),
        ("a.flac", 22050, 1),
        ("a.mp3", 44100, 2),
        ("a.ogg", 48000, 2),
        ("a.m4a", 32000, 1),
    ],
)
def test_formats_and_rates(tmp_path: Path, name: str, rate: int, channels: int) -> None:
    (seg,) = decode(mf.audio(tmp_path / name, 2.0, rate, channels), AUDIO, CFG)
    assert seg.pixels.shape == (3, 112, 1036)
    assert seg.pixels.dtype == torch.float32
    assert torch.isfinite(seg.pixels).all()
    assert seg.start_s == 0.0
    assert seg.end_s == pytest.approx(2.0, abs=0.05)


def test_short_audio_is_tiled_into_all_three_channels(tmp_path: Path) -> None:
    (seg,) = decode(mf.audio(tmp_path / "a.wav", 1.0), AUDIO, CFG)  # 98 fbank frames
    px = seg.pixels
    assert torch.equal(px[0], px[1]) and torch.equal(px[0], px[2])
    assert torch.equal(px[:, :, 98:196], px[:, :, :98])  # repeated along time
    assert seg.end_s == pytest.approx(1.0)  # the media's end, not its last frame's


def test_long_audio_windows(tmp_path: Path) -> None:
    path = mf.audio(tmp_path / "long.wav", 25.0)  # 2498 frames
    segs = decode(path, AUDIO, CFG)
    assert [round(s.start_s, 2) for s in segs] == [0.0, 10.36, 14.62]  # last one ends at the end
    assert [round(s.end_s, 2) for s in segs] == [10.36, 20.72, 25.0]
    overlapping = decode(path, AUDIO, with_audio(CFG, hop_frames=518))
    assert [round(s.start_s, 2) for s in overlapping] == [0.0, 5.18, 10.36, 14.62]
    assert torch.equal(overlapping[2].pixels, segs[1].pixels)


def test_plan_audio_windows() -> None:
    assert plan_audio_windows(50, 100, 100) == [(0, 50)]
    assert plan_audio_windows(100, 100, 100) == [(0, 100)]
    assert plan_audio_windows(250, 100, 100) == [(0, 100), (100, 200), (150, 250)]
    assert plan_audio_windows(200, 100, 100) == [(0, 100), (100, 200)]


def test_first_channel_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    left, right = (rng.uniform(-0.5, 0.5, (1, 16000)).astype(np.float32) for _ in range(2))
    stereo = mf.audio_samples(tmp_path / "stereo.wav", np.concatenate([left, right]), 16000)
    mono = mf.audio_samples(tmp_path / "mono.wav", left, 16000)
    assert torch.equal(decode(stereo, AUDIO, CFG)[0].pixels, decode(mono, AUDIO, CFG)[0].pixels)


def test_mel_bins_and_target_length_follow_the_spec(tmp_path: Path) -> None:
    path = mf.audio(tmp_path / "a.wav", 3.0)
    spec = MediaSpec(Modality.AUDIO, num_mel_bins=126, target_length=204)
    segs = decode(path, spec, with_audio(CFG, hop_frames=204))
    assert [tuple(s.pixels.shape) for s in segs] == [(3, 126, 204)] * 2


def test_max_seconds(tmp_path: Path) -> None:
    segs = decode(mf.audio(tmp_path / "a.wav", 30.0), AUDIO, with_audio(CFG, max_seconds=12.0))
    assert segs[-1].end_s == pytest.approx(12.0)


def test_too_short_and_silent(tmp_path: Path) -> None:
    short = mf.audio_samples(tmp_path / "short.wav", np.zeros((1, 399), np.float32), 16000)
    with pytest.raises(MediaError) as info:
        decode(short, AUDIO, CFG)
    assert info.value.reason == "audio_too_short"
    silent = mf.audio_samples(tmp_path / "silent.wav", np.zeros((1, 400), np.float32), 16000)
    (seg,) = decode(silent, AUDIO, CFG)  # one frame of silence: log of the energy floor
    assert torch.isfinite(seg.pixels).all()


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_streaming_resampler_equals_one_shot(rate: int) -> None:
    x = np.random.default_rng(rate).standard_normal(3 * rate + 17).astype(np.float32)
    whole = resample(x, rate, 16000)
    r = SincResampler(rate, 16000)
    pieces = [r.process(p) for p in np.array_split(x, 13)] + [r.flush()]
    streamed = np.concatenate(pieces)
    assert len(whole) == int(np.ceil(16000 * len(x) / rate)) == len(streamed)
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_resampled_tone_keeps_its_frequency() -> None:
    t = np.arange(44100) / 44100
    y = resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 44100, 16000)
    peak = np.argmax(np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(len(y) - 2000))))
    assert peak * 16000 / (len(y) - 2000) == pytest.approx(1000, abs=2)


def test_deterministic(tmp_path: Path) -> None:
    path = mf.audio(tmp_path / "a.mp3", 12.0, 44100, 2)
    a, b = decode(path, AUDIO, CFG), decode(path, AUDIO, CFG)
    assert all(torch.equal(x.pixels, y.pixels) for x, y in zip(a, b, strict=True))
