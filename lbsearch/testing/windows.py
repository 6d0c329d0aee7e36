"""A video whose picture and sound are known per time window, for cut, moment and bench tests.

Every `window_s` seconds the picture's top half takes the next colour of `COLOURS` and the sound
the next tone of `TONES_HZ`; the bottom half is a grey level that counts frames (frame i has grey
`frame_grey(i)`), so a decoded frame tells which frame it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

COLOURS = [
    (220, 40, 40),
    (40, 200, 40),
    (40, 40, 220),
    (220, 220, 40),
    (40, 220, 220),
    (220, 40, 220),
]
TONES_HZ = [300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0]
GREY_STEPS = 25  # grey levels 0, 10, ..., 240 repeat every 25 frames


def frame_grey(index: int) -> int:
    return (index % GREY_STEPS) * 10


def window_video(
    path: Path,
    seconds: float,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    window_s: float = 10.0,
    gop: int = 25,
    with_audio: bool = True,
    rate: int = 16000,
    preset: str = "veryfast",
    bframes: int | None = None,
    colours: Sequence[int] | None = None,
    tones: Sequence[int] | None = None,
) -> Path:
    """An H.264 MP4 (key frame every `gop` frames) with an AAC sound track. `colours` / `tones`:
    the index into COLOURS / TONES_HZ of each window (cycling through them by default), so a
    window's picture and sound can be chosen apart."""
    import av

    width, height = size
    with av.open(str(path), "w") as box:
        video: Any = box.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        options: dict[str, str] = {
            "crf": "23",
            "preset": preset,
            "keyint_min": str(gop),
            "sc_threshold": "0",
        }
        if bframes is not None:
            options["bf"] = str(bframes)
        video.options = options
        video.codec_context.gop_size = gop
        audio = box.add_stream("aac", rate=rate, layout="mono") if with_audio else None
        chunk, sample = 1024, 0
        total = round(seconds * rate)
        for i in range(round(seconds * fps)):
            t = i / fps
            while audio is not None and sample < min(total, round((t + 1 / fps) * rate)):
                n = min(chunk, total - sample)
                _mux_tone(box, audio, sample, n, rate, window_s, tones)
                sample += n
            frame = av.VideoFrame.from_ndarray(
                _picture(i, t, size, window_s, colours), format="rgb24"
            )
            box.mux(video.encode(frame))
        box.mux(video.encode(None))
        if audio is not None:
            box.mux(audio.encode(None))
    return path


def _choice(window: np.ndarray, chosen: Sequence[int] | None, count: int) -> np.ndarray:
    """The index of each window's colour or tone: `chosen` (its last one held), else cycling."""
    if chosen is None:
        return window % count
    return np.asarray(chosen)[np.minimum(window, len(chosen) - 1)]


def _picture(
    index: int, t: float, size: tuple[int, int], window_s: float, colours: Sequence[int] | None
) -> np.ndarray:
    width, height = size
    img = np.empty((height, width, 3), dtype=np.uint8)
    window = np.array([int(t // window_s)])
    img[: height // 2] = COLOURS[int(_choice(window, colours, len(COLOURS))[0])]
    img[height // 2 :] = frame_grey(index)
    return img


def _mux_tone(
    box: object,
    stream: object,
    first: int,
    n: int,
    rate: int,
    window_s: float,
    tones: Sequence[int] | None = None,
) -> None:
    import av

    t = (first + np.arange(n)) / rate
    hz = np.asarray(TONES_HZ)[_choice((t // window_s).astype(int), tones, len(TONES_HZ))]
    samples = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = rate, first, Fraction(1, rate)
    box.mux(stream.encode(frame))  # type: ignore[attr-defined]
