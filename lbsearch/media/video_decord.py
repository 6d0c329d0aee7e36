"""Optional decord backend for video (`video.backend = "decord"`, extra `lbsearch[decord]`).

decord is the reference's own decoder; it gives the same frames as the PyAV backend (both convert
with FFmpeg's default swscale path, and decord applies the display rotation as the PyAV backend
does) and the same windows (`video.plan_windows` on decord's frame timestamps). decord opens
files by name, so the FIFO/device checks happen before (decode.py). Known decord 0.6 limitation:
frames whose width is not a multiple of 32 can fail to copy (reported as `corrupt`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..types import MediaSpec, Modality, Segment
from .reasons import media_error
from .transforms import frames_to_input
from .video import plan_windows


def decode_video_decord(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    reader = _open(path, cfg)
    count = len(reader)
    if count == 0:
        raise media_error(path, "no_video_frames", "decord found no frames")
    stamps = np.asarray(reader.get_frame_timestamp(list(range(count))), dtype=np.float64)
    times = stamps[:, 0] - stamps[0, 0]
    duration = float(stamps[-1, 1] - stamps[0, 0])
    if duration <= times[-1]:  # no end time for the last frame: assume the nominal rate
        duration = float(times[-1] + 1.0 / max(reader.get_avg_fps(), 1e-6))
    windows = plan_windows(
        times, duration, cfg.video.segment_seconds, cfg.video.max_segments, spec.num_frames
    )
    segments = []
    for w in windows:
        try:
            frames = reader.get_batch(list(w.indices)).asnumpy()
        except Exception as exc:  # decord raises its own DECORDError for damaged streams
            raise media_error(path, "corrupt", f"decord: {exc}") from None
        pixels = frames_to_input(frames, spec.image_size)
        segments.append(Segment(str(path), Modality.VIDEO, w.start_s, w.end_s, pixels))
    return segments


def _open(path: Path, cfg: Config) -> Any:
    try:
        import decord
    except ImportError:
        raise media_error(
            path, "decode_error", "video.backend is 'decord' but decord is not installed"
        ) from None
    decord.bridge.set_bridge("native")
    try:
        return decord.VideoReader(
            str(path), ctx=decord.cpu(0), num_threads=max(0, cfg.video.decode_threads)
        )
    except Exception as exc:
        raise media_error(path, "corrupt", f"decord cannot open it: {exc}") from None
