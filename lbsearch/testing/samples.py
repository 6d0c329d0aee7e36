"""A small sample media folder with every modality, for the demo and for end-to-end tests.

The pictures and sounds are synthetic (drawn shapes, tones, noise); they exercise every decoder
path: JPEG and PNG images, a 16-bit millimetre depth map, a thermal picture, an MP4 video with a
sound track, and WAV and FLAC audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image, ImageDraw

SAMPLE_RATE = 16000


def write_sample_media(root: Path) -> list[Path]:
    """Write the sample files under `root` and return their paths."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(exist_ok=True)
    (root / "thermal").mkdir(exist_ok=True)
    return [
        _picture(root / "sunset_beach.jpg", (255, 140, 40), (30, 90, 200)),
        _picture(root / "green_field.png", (70, 170, 60), (150, 200, 255)),
        _depth_map(root / "depth" / "corridor_depth.png"),
        _thermal(root / "thermal" / "person_ir.jpg"),
        write_video(root / "bouncing_ball.mp4", seconds=12.0),
        write_audio(root / "whistle.wav", seconds=4.0, tone_hz=880.0),
        write_audio(root / "hum.flac", seconds=14.0, tone_hz=110.0),
    ]


def _picture(path: Path, ground: tuple[int, int, int], sky: tuple[int, int, int]) -> Path:
    image = Image.new("RGB", (320, 240), sky)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 150, 320, 240), fill=ground)
    draw.ellipse((200, 40, 260, 100), fill=(255, 230, 120))
    image.save(path, quality=90)
    return path


def _depth_map(path: Path) -> Path:
    """A corridor receding from 0.8 m to 6 m, stored as 16-bit millimetres like the reference."""
    rows, cols = np.mgrid[0:240, 0:320]
    centre = np.hypot((rows - 120) / 120, (cols - 160) / 160)
    millimetres = 800 + (1.0 - np.clip(centre, 0, 1)) * 5200
    Image.fromarray(millimetres.astype(np.uint16)).save(path)
    return path


def _thermal(path: Path) -> Path:
    rows, cols = np.mgrid[0:240, 0:320]
    heat = np.exp(-(((rows - 120) / 60) ** 2 + ((cols - 160) / 35) ** 2))
    grey = (40 + heat * 200).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path, quality=90)
    return path


def write_video(
    path: Path, seconds: float, fps: int = 24, size: tuple[int, int] = (320, 240)
) -> Path:
    """An H.264 MP4 of a ball bouncing over a dark background, with a 440 Hz AAC sound track."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for index in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(_ball_frame(index / fps, size), format="rgb24")
            container.mux(video.encode(frame))
        _mux_audio(container, audio, _tone(seconds, 440.0))
        container.mux(video.encode(None))
    return path


def _ball_frame(t: float, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    frame = np.full((height, width, 3), (20, 20, 60), dtype=np.uint8)
    x = int(width / 2 + width * 0.375 * np.sin(t * 2.0))
    y = int(height * 0.83 - abs(np.sin(t * 3.0)) * height * 0.62)
    frame[max(0, y - 15) : y + 15, max(0, x - 15) : x + 15] = (230, 60, 40)
    return frame


def _mux_audio(container: object, stream: object, samples: np.ndarray) -> None:
    import av

    chunk = 1024
    for start in range(0, len(samples), chunk):
        block = samples[start : start + chunk].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, start
        container.mux(stream.encode(frame))  # type: ignore[attr-defined]
    container.mux(stream.encode(None))  # type: ignore[attr-defined]


def _tone(seconds: float, tone_hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.random.default_rng(0).normal(0, 0.02, t.shape)
    return (0.4 * np.sin(2 * np.pi * tone_hz * t) + noise).astype(np.float32)


def write_audio(path: Path, seconds: float, tone_hz: float) -> Path:
    """A mono 16 kHz tone with a little noise, as WAV (s16) or FLAC by the file's suffix."""
    import av

    fmt = "flac" if path.suffix == ".flac" else "pcm_s16le"
    with av.open(str(path), "w") as container:
        stream = cast("av.AudioStream", container.add_stream(fmt, rate=SAMPLE_RATE))
        stream.layout = "mono"
        samples = (_tone(seconds, tone_hz) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        container.mux(stream.encode(None))
    return path
