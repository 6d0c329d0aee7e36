"""What the preview pane shows for a hit: a picture (if any) and facts about the file.

No UI here: `build_preview` reads the file with Pillow or PyAV and returns plain values, so it
can run in a worker thread and be tested without a terminal. Pictures are shrunk to at most
PICTURE_MAX pixels a side; depth maps are normalised to grey (near = dark, far = light).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from lbsearch.types import Modality

if TYPE_CHECKING:
    from lbsearch.search import Hit

PICTURE_MAX = 640
PATH_WIDTH = 70
MAX_FRAMES_TO_TARGET = 600  # frames decoded after a seek to reach the segment start, at most
TIMED = (Modality.VIDEO, Modality.AUDIO)


@dataclass(frozen=True)
class Preview:
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    picture: Image.Image | None = field(default=None, compare=False)
    note: str = ""


def build_preview(hit: Hit) -> Preview:
    """The preview of `hit`; a file that cannot be read gives a preview saying why."""
    path = Path(hit.path)
    facts = [("modality", hit.modality.value), ("score", f"{hit.score:.4f}")]
    if hit.modality in TIMED:
        facts.append(("segment", span_text(hit.start_s, hit.end_s)))
    facts += _file_facts(path, hit)
    try:
        picture, media = _read_media(path, hit)
    except Exception as exc:  # unreadable, gone, or not what the catalog says: say so, go on
        return Preview(path.name, tuple(facts), None, f"cannot read: {exc}")
    if hit.duration_s is not None:  # the catalog's duration is already shown
        media = [(key, value) for key, value in media if key != "length"]
    return Preview(path.name, tuple(facts + media), picture)


def _read_media(path: Path, hit: Hit) -> tuple[Image.Image | None, list[tuple[str, str]]]:
    if hit.modality is Modality.DEPTH:
        return depth_picture(path)
    if hit.modality in (Modality.IMAGE, Modality.THERMAL):
        return still_picture(path)
    return av_preview(path, hit.start_s if hit.modality is Modality.VIDEO else None)


def _file_facts(path: Path, hit: Hit) -> list[tuple[str, str]]:
    facts = [("size", human_size(hit.size))]
    if hit.mtime:
        when = dt.datetime.fromtimestamp(hit.mtime).strftime("%Y-%m-%d %H:%M")
        facts.append(("modified", when))
    if hit.duration_s is not None:
        facts.append(("duration", clock(hit.duration_s)))
    facts.append(("folder", display_path(str(path.parent), 40)))
    return facts


def still_picture(path: Path) -> tuple[Image.Image, list[tuple[str, str]]]:
    """An image or thermal picture, upright (EXIF), RGB, shrunk; plus its pixel size and format."""
    with Image.open(path) as im:
        facts = [("pixels", f"{im.width} x {im.height}"), ("format", im.format or "?")]
        upright = ImageOps.exif_transpose(im)
        picture = upright.convert("RGB")
    picture.thumbnail((PICTURE_MAX, PICTURE_MAX))
    return picture, facts


def depth_picture(path: Path) -> tuple[Image.Image, list[tuple[str, str]]]:
    """A depth map (16-bit image or .npy) as grey, stretched between its nearest and farthest;
    plus its pixel size and raw value range (millimetres for images, metres for .npy)."""
    if path.suffix.lower() == ".npy":
        raw = np.load(path, allow_pickle=False)
    else:
        with Image.open(path) as im:
            raw = np.asarray(im)
    facts = [("pixels", f"{raw.shape[1]} x {raw.shape[0]}")]
    valid = raw[np.isfinite(raw) & (raw > 0)] if raw.size else raw
    if valid.size:
        facts.append(("values", f"{valid.min():g} to {valid.max():g}"))
    return grey_from_depth(raw), facts


def grey_from_depth(raw: np.ndarray) -> Image.Image:
    depth = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if depth.ndim == 3:
        depth = depth[..., 0]
    valid = depth[depth > 0]
    low, high = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
    scaled = (depth - low) / ((high - low) or 1.0)
    grey = (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    picture = Image.fromarray(grey, mode="L")
    picture.thumbnail((PICTURE_MAX, PICTURE_MAX))
    return picture


def av_preview(
    path: Path, frame_at: float | None
) -> tuple[Image.Image | None, list[tuple[str, str]]]:
    """Container facts from PyAV and, when frame_at is given, the video frame at that time."""
    import av

    with av.open(str(path), metadata_errors="ignore") as box:
        facts = container_facts(box)
        picture = None
        if frame_at is not None and _video_stream(box) is not None:
            picture = frame_near(box, frame_at)
    return picture, facts


def container_facts(box: Any) -> list[tuple[str, str]]:
    facts = [("container", box.format.name)]
    if box.duration:
        facts.append(("length", clock(box.duration / 1_000_000)))
    video = _video_stream(box)
    if video is not None:
        rate = video.average_rate
        fps = f", {float(rate):.3g} fps" if isinstance(rate, Fraction) and rate else ""
        facts.append(("video", f"{video.codec_context.name} {video.width}x{video.height}{fps}"))
    for stream in box.streams.audio[:1]:
        layout = getattr(stream.layout, "name", "?")
        facts.append(("audio", f"{stream.codec_context.name} {stream.sample_rate} Hz {layout}"))
    return facts


def _video_stream(box: Any) -> Any:
    from lbsearch.media.avio import first_video_stream

    return first_video_stream(box)


def frame_near(box: Any, seconds: float) -> Image.Image | None:
    """The first frame at or after `seconds` on the file's timeline (lbsearch's t = 0)."""
    from lbsearch.media.avio import timeline_origin

    stream = _video_stream(box)
    target = timeline_origin(box) + max(0.0, seconds)
    if stream.time_base is not None:
        box.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
    last = None
    for count, frame in enumerate(box.decode(stream)):
        last = frame
        if frame.time is None or frame.time >= target - 1e-3 or count >= MAX_FRAMES_TO_TARGET:
            break
    if last is None:
        return None
    picture: Image.Image = last.to_image()
    picture.thumbnail((PICTURE_MAX, PICTURE_MAX))
    return picture


def display_path(path: str, width: int = PATH_WIDTH) -> str:
    """`path` with the home folder as ~, cut at the front with … when longer than `width`."""
    home = str(Path.home())
    if home not in ("", "/") and path.startswith(home + os.sep):
        path = "~" + path[len(home) :]
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def clock(seconds: float) -> str:
    """mm:ss (h:mm:ss past an hour)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def span_text(start_s: float, end_s: float) -> str:
    return f"{clock(start_s)}-{clock(end_s)}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
