"""What media failures and durations tell the user: the file, what went wrong, what to do."""

from __future__ import annotations

from pathlib import Path

import media_factory as mf
import numpy as np
import pytest

from lbsearch.config import Config
from lbsearch.errors import MediaError
from lbsearch.media import decode
from lbsearch.types import MediaSpec, Modality

CFG = Config()  # the packaged defaults; the user's settings never reach tests


@pytest.mark.parametrize("name", ["noise.mp4", "noise.mkv", "noise.mp3"])
@pytest.mark.parametrize("modality", [Modality.VIDEO, Modality.AUDIO])
def test_ffmpeg_errors_name_the_file_not_a_descriptor(
    tmp_path: Path, name: str, modality: Modality
) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError) as info:
        decode(path, MediaSpec(modality), CFG)
    error = info.value
    assert error.reason == "corrupt"
    assert str(path) in str(error)
    assert "Errno" not in error.detail and not error.detail.rstrip().endswith("'")
    assert "invalid data found" in error.detail.lower()
    assert error.hint  # what to do


@pytest.mark.parametrize(("seconds", "expected"), [(25.0, 25.0), (0.367, 0.367), (14.0, 14.0)])
def test_audio_duration_is_the_decoded_media_s(
    tmp_path: Path, seconds: float, expected: float
) -> None:
    samples = round(seconds * 16000)
    wave = (0.3 * np.sin(np.arange(samples) / 7.0)).astype(np.float32).reshape(1, -1)
    path = mf.audio_samples(tmp_path / "clip.wav", wave, 16000)
    segments = decode(path, MediaSpec(Modality.AUDIO), CFG)
    assert segments[-1].end_s == pytest.approx(expected, abs=1e-6)


def test_audio_duration_at_another_rate(tmp_path: Path) -> None:
    path = mf.audio(tmp_path / "clip.flac", 3.0, 44100, 2)
    assert decode(path, MediaSpec(Modality.AUDIO), CFG)[-1].end_s == pytest.approx(3.0, abs=1e-3)
