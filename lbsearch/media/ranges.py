"""Parts of long videos: decode only the windows that start in a time range.

A scale-out indexer hands the parts of one long video to different workers, so one file does
not pin one worker for its whole length. Every part numbers the frames and plans the windows of
the whole file exactly as `decode` does, then decodes only its own windows: the parts of a file,
together, give exactly the segments of `decode`, whatever the ranges (the ranges only need to
cover the timeline without overlapping).

Ranges are cut from the container's header duration (`split_ranges`), which costs a header
read, not a demux; a wrong header only makes parts uneven, never wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..config import Config
from ..errors import MediaError
from ..types import MediaSpec, Segment
from .avio import as_media_error
from .fileio import open_media
from .video import Window


@dataclass(frozen=True)
class PartSpec(MediaSpec):
    """A video MediaSpec restricted to the windows starting in [from_s, to_s)."""

    from_s: float = 0.0
    to_s: float = math.inf

    def whole(self) -> MediaSpec:
        return MediaSpec(
            self.modality,
            self.image_size,
            self.num_frames,
            self.num_mel_bins,
            self.target_length,
            self.sample_rate,
            self.audio_mean,
            self.audio_std,
            self.max_depth,
        )


def decode_part(path: Path, spec: MediaSpec, cfg: Config) -> list[Segment]:
    """`decode`, except that a PartSpec gives only its windows (possibly none, never an error
    for being empty: the parts together decide whether the file had frames)."""
    from .decode import decode

    if not isinstance(spec, PartSpec):
        return decode(path, spec, cfg)
    path = Path(path)
    try:
        with open_media(path, cfg.media.max_file_bytes) as (handle, _):
            return _decode_windows(handle, path, spec, cfg)
    except MediaError:
        raise
    except Exception as exc:  # as decode(): a decoder bug is still a typed skip
        raise as_media_error(path, exc) from exc


def _decode_windows(handle: BinaryIO, path: Path, spec: PartSpec, cfg: Config) -> list[Segment]:
    from .video import decode_video

    def mine(window: Window) -> bool:
        return spec.from_s <= window.start_s < spec.to_s

    return list(decode_video(handle, path, spec.whole(), cfg, keep=mine))


def split_ranges(path: Path, part_seconds: float) -> list[tuple[float, float]]:
    """[from_s, to_s) ranges of about `part_seconds` covering the video's timeline (the last one
    open-ended); one range when the header gives no duration or the file cannot be opened (the
    decode of that one range then reports what is wrong)."""
    duration = header_duration(path)
    if duration is None or part_seconds <= 0 or duration <= part_seconds:
        return [(0.0, math.inf)]
    count = math.ceil(duration / part_seconds)
    cuts = [k * part_seconds for k in range(count)]
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], math.inf], strict=True)]


def header_duration(path: Path) -> float | None:
    """The container's duration in seconds from its header, or None (no header read errors)."""
    try:
        import av

        with av.open(str(path)) as box:
            if box.duration:
                return float(box.duration) / 1_000_000  # AV_TIME_BASE
            stream = box.streams.video[0] if box.streams.video else None
            if stream is not None and stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except Exception:  # best effort: the decode of the whole file reports real problems
        return None
    return None
