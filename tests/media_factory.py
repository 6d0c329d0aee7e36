"""Generators of small test media: images, depth maps, videos and audio, made with PyAV/Pillow/numpy.

Content is deterministic (seeded) and textured enough that resizing, frame choice and channel
order show up in the numbers. Used by the media tests and by tools/make_preprocessing_fixtures.py
(which runs in the reference venv: keep this module free of lbsearch imports).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

__all__ = [
    "audio",
    "audio_samples",
    "depth_npy",
    "depth_png",
    "image",
    "pattern",
    "truncate",
    "video",
]


def pattern(width: int, height: int, seed: int = 0, t: int = 0) -> np.ndarray:
    """(height, width, 3) uint8: gradients that move with `t` plus a block of noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack(
        [(xx * 3 + t * 5) % 256, (yy * 2 + t * 3) % 256, ((xx + yy) * 2 + t * 7 + seed * 31) % 256],
        axis=-1,
    ).astype(np.uint8)
    h0, h1, w0, w1 = height // 3, max(height // 2, height // 3 + 1), width // 4, max(width // 2, 1)
    img[h0:h1, w0:w1] = rng.integers(0, 256, (h1 - h0, w1 - w0, 3), dtype=np.uint8)
    return img


def image(
    path: Path,
    width: int,
    height: int,
    mode: str = "RGB",
    seed: int = 0,
    exif_orientation: int | None = None,
    **save_args: object,
) -> Path:
    """A picture in Pillow `mode` (RGB, L, LA, RGBA, P, CMYK, I;16...), format from the suffix."""
    im = Image.fromarray(pattern(width, height, seed))
    if mode in {"RGBA", "LA"}:
        alpha = Image.fromarray(np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1)))
        im = im.convert("L") if mode == "LA" else im
        im.putalpha(alpha)
    elif mode == "P":
        im = im.quantize(colors=64)
    elif mode != "RGB":
        im = im.convert(mode)
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        save_args["exif"] = exif
    im.save(path, **save_args)  # type: ignore[arg-type]
    return path


def depth_png(path: Path, width: int, height: int, max_mm: int = 12000, seed: int = 0) -> Path:
    """A 16-bit single-channel depth map in millimetres (PNG or TIFF by suffix)."""
    rng = np.random.default_rng(seed)
    _, xx = np.mgrid[0:height, 0:width]
    mm = 300 + (xx / max(width - 1, 1)) * (max_mm - 300) + rng.integers(0, 200, (height, width))
    mm[: height // 5, : width // 5] = 0  # invalid pixels, as sensors write them
    Image.fromarray(np.clip(mm, 0, 65535).astype(np.uint16)).save(path)
    return path


def depth_npy(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A float32 depth map in metres, with a NaN hole."""
    rng = np.random.default_rng(seed)
    metres = rng.uniform(0.2, 14.0, (height, width)).astype(np.float32)
    metres[0, 0] = np.nan
    np.save(path, metres)
    return path


def _tone(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """(channels, n) float32: a chirp and a tone per channel plus a little noise."""
    n = max(0, round(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    chans = []
    for c in range(channels):
        f0 = 220.0 * (c + 1)
        sig = 0.3 * np.sin(2 * math.pi * (f0 + 400 * t) * t) + 0.2 * np.sin(2 * math.pi * 1500 * t)
        chans.append(sig + 0.01 * rng.standard_normal(n))
    return np.clip(np.stack(chans), -1, 1).astype(np.float32) if n else np.zeros((channels, 0))


_BITEXACT = {"fflags": "+bitexact"}  # no random ids or dates in containers: same bytes each run
_AUDIO_CODECS = {
    ".wav": ("pcm_s16le", "s16"),
    ".flac": ("flac", "s16"),
    ".mp3": ("libmp3lame", "fltp"),
    ".ogg": ("libopus", "flt"),
    ".opus": ("libopus", "flt"),
    ".m4a": ("aac", "fltp"),
    ".aac": ("aac", "fltp"),
}


def audio(path: Path, seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    """An audio file; codec from the suffix (.wav PCM16, .flac, .mp3, .ogg/.opus, .m4a)."""
    return audio_samples(path, _tone(seconds, rate, channels, seed), rate)


def audio_samples(path: Path, samples: np.ndarray, rate: int) -> Path:
    """An audio file holding `samples` (channels, n) in [-1, 1]; codec from the suffix."""
    codec, fmt = _AUDIO_CODECS[path.suffix.lower()]
    channels = samples.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    with av.open(str(path), "w", options=_BITEXACT) as box:
        stream = box.add_stream(codec, rate=rate, layout=layout)
        _encode_audio(box, stream, samples, rate, fmt, layout)
    return path


def _encode_audio(
    box: av.container.OutputContainer,
    stream: av.AudioStream,
    samples: np.ndarray,
    rate: int,
    fmt: str,
    layout: str,
    chunk: int = 1024,
) -> None:
    for start in range(0, samples.shape[1], chunk):
        part = samples[:, start : start + chunk]
        if fmt == "s16":
            data = (part * 32767).round().astype(np.int16).T.reshape(1, -1)
        elif fmt == "flt":
            data = np.ascontiguousarray(part.T.reshape(1, -1), dtype=np.float32)
        else:
            data = np.ascontiguousarray(part, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in stream.encode(frame):
            box.mux(packet)
    for packet in stream.encode(None):
        box.mux(packet)


def video(
    path: Path,
    seconds: float,
    fps: float = 10,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    with_audio: bool = False,
    audio_rate: int = 16000,
    rotation: int | None = None,
    gop: int | None = None,
    seed: int = 0,
) -> Path:
    """A video of round(seconds * fps) frames (yuv420p), optionally with a sound track."""
    frames = max(1, round(seconds * fps))
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=_BITEXACT) as box:
        vs = box.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            vs.options = {"crf": "30", "preset": "veryfast"}
        if gop:
            vs.codec_context.gop_size = gop
        if rotation is not None:
            vs.set_display_rotation(rotation)
        if with_audio:
            aus = box.add_stream("aac", rate=audio_rate, layout="mono")
            _encode_audio(box, aus, _tone(seconds, audio_rate, 1, seed), audio_rate, "fltp", "mono")
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(width, height, seed, t=i), format="rgb24")
            for packet in vs.encode(frame):
                box.mux(packet)
        for packet in vs.encode(None):
            box.mux(packet)
    return path


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """A copy of `src` cut to `fraction` of its bytes (an interrupted copy)."""
    data = src.read_bytes()
    dst.write_bytes(data[: max(1, int(len(data) * fraction))])
    return dst
