"""Pictures and facts for showing a media file to a person: the TUI's preview pane, the web
page's thumbnails. Pure core (Pillow, PyAV, numpy): no UI, safe in worker threads.

Everything is read through this package's guarded readers: `open_media` (never blocks on a
FIFO, never opens a device, honours media.max_file_bytes), Pillow with the
media.max_image_pixels limit, and the video decoder's frame numbering and seeking, so a key
frame shown for a segment is the frame the index numbered at that time. Failures are
MediaErrors with the usual reason codes.

- `picture(path, modality, max_side)`: an image, thermal picture or depth map (grey: near is
  dark, far is light), or a video's first frame, upright RGB/L, at most `max_side` a side
- `key_frame(path, at_s, max_side)`: the video frame at `at_s` seconds on the file's timeline
- `describe(path, modality, at_s, max_side)`: a picture (None for audio) and facts
  (pixels, format, container, codecs, length); `describe_open` the same from an open handle
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ..config import Config
from ..types import Modality
from .reasons import media_error

if TYPE_CHECKING:
    from PIL import Image as PILImage

PICTURE_MAX = 640
Facts = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MediaView:
    """What a file looks like: a picture (None for audio) and (name, value) facts about it."""

    picture: PILImage.Image | None = field(compare=False)
    facts: Facts = ()


def picture(
    path: Path | str, modality: Modality, max_side: int = PICTURE_MAX, config: Config | None = None
) -> PILImage.Image:
    """The file as one picture (a video's first frame); MediaError for audio or bad files."""
    view = describe(path, modality, 0.0, max_side, config)
    if view.picture is None:
        raise media_error(path, "unsupported_type", f"{modality.value} has no picture")
    return view.picture


def key_frame(
    path: Path | str, at_s: float, max_side: int = PICTURE_MAX, config: Config | None = None
) -> PILImage.Image:
    """The video frame shown at `at_s` seconds (the first one at or after it)."""
    view = describe(path, Modality.VIDEO, at_s, max_side, config)
    assert view.picture is not None
    return view.picture


def describe(
    path: Path | str,
    modality: Modality,
    at_s: float = 0.0,
    max_side: int = PICTURE_MAX,
    config: Config | None = None,
) -> MediaView:
    """Picture and facts of `path` read as `modality` (see the module's doc)."""
    from .fileio import open_media

    cfg = config or Config()
    path = Path(path)
    with open_media(path, cfg.media.max_file_bytes) as (handle, _):
        return describe_open(handle, path, modality, at_s, max_side, cfg)


def describe_open(
    handle: BinaryIO, path: Path, modality: Modality, at_s: float, max_side: int, cfg: Config
) -> MediaView:
    """`describe` of a file the caller opened (and checked) itself; `path` only names it in
    errors. The handle is read from its start, and seeked, never closed."""
    if modality in (Modality.IMAGE, Modality.THERMAL):
        view = _still(handle, path, cfg.media.max_image_pixels)
    elif modality is Modality.DEPTH:
        view = _depth(handle, path, cfg.media.max_image_pixels)
    else:
        view = _timed(handle, path, at_s if modality is Modality.VIDEO else None, cfg)
    if view.picture is not None:
        view.picture.thumbnail((max_side, max_side))
    return view


def grey_from_depth(raw: np.ndarray) -> PILImage.Image:
    """A depth map stretched between its nearest and farthest valid (> 0) values as 8-bit grey."""
    from PIL import Image

    depth = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if depth.ndim == 3:
        depth = depth[..., 0]
    valid = depth[depth > 0]
    low, high = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
    scaled = (depth - low) / ((high - low) or 1.0)
    return Image.fromarray((np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8), mode="L")


# ---------------------------------------------------------------------------- readers


def _still(handle: BinaryIO, path: Path, max_pixels: int) -> MediaView:
    from .image import _apply_exif, _open_image, _to_rgb

    with _open_image(handle, path, max_pixels) as im:
        facts = (("pixels", f"{im.width} x {im.height}"), ("format", im.format or "?"))
        upright = _to_rgb(_apply_exif(im, path))
        # closing the file closes `im`: keep pixels of our own
        return MediaView(upright.copy() if upright is im else upright, facts)


def _depth(handle: BinaryIO, path: Path, max_pixels: int) -> MediaView:
    from .image import _is_npy, _open_image, _read_npy_depth

    if _is_npy(handle):
        raw = _read_npy_depth(handle, path, max_pixels)  # metres
    else:
        with _open_image(handle, path, max_pixels) as im:
            raw = np.asarray(im)  # millimetres in a 16-bit map
    facts = [("pixels", f"{raw.shape[1]} x {raw.shape[0]}")]
    valid = raw[np.isfinite(raw) & (raw > 0)] if raw.size else raw
    if valid.size:
        facts.append(("values", f"{valid.min():g} to {valid.max():g}"))
    return MediaView(grey_from_depth(raw), tuple(facts))


def _timed(handle: BinaryIO, path: Path, frame_at: float | None, cfg: Config) -> MediaView:
    """Container facts, and the video frame at `frame_at` when given (None: sound only)."""
    from .avio import first_video_stream, open_container

    with open_container(handle, path) as box:
        facts = container_facts(box)
        has_video = first_video_stream(box) is not None
    if frame_at is None or not has_video:
        return MediaView(None, facts)
    return MediaView(_frame_at(handle, path, frame_at, cfg), facts)


def _frame_at(handle: BinaryIO, path: Path, seconds: float, cfg: Config) -> PILImage.Image:
    """The frame the video decoder numbers at `seconds` (its frame index and seeking)."""
    from PIL import Image

    from .avio import open_container
    from .video import FrameReader, _check_frame_size, _video_stream, build_index

    with open_container(handle, path) as box:  # pass 1: number the frames (demux only)
        stream = _video_stream(box, path)
        _check_frame_size(stream, path, cfg.media.max_image_pixels)
        index = build_index(box, stream, path)
    target = int(np.searchsorted(index.times, max(0.0, seconds) - 1e-6))
    target = min(target, len(index.times) - 1)
    with open_container(handle, path) as box:  # pass 2: decode from the keyframe before it
        stream = _video_stream(box, path)
        frames = FrameReader(box, stream, index, [target]).get([target])
    if not frames:
        raise media_error(path, "no_video_frames", "no video frame could be decoded")
    return Image.fromarray(np.ascontiguousarray(frames[0]))


def container_facts(box: Any) -> Facts:
    from .avio import first_video_stream

    facts = [("container", box.format.name)]
    if box.duration:
        facts.append(("length", _clock(box.duration / 1_000_000)))
    video = first_video_stream(box)
    if video is not None:
        rate = video.average_rate
        fps = f", {float(rate):.3g} fps" if isinstance(rate, Fraction) and rate else ""
        facts.append(("video", f"{video.codec_context.name} {video.width}x{video.height}{fps}"))
    for stream in box.streams.audio[:1]:
        layout = getattr(stream.layout, "name", "?")
        facts.append(("audio", f"{stream.codec_context.name} {stream.sample_rate} Hz {layout}"))
    return tuple(facts)


def _clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
