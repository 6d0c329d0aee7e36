"""Picture and video dimensions from file headers, for the catalog (no pixel decoding)."""

from __future__ import annotations

from pathlib import Path

from ..types import Modality

_EXIF_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}  # orientations that swap width and height


def dimensions(path: Path, modality: Modality) -> tuple[int, int] | None:
    """(width, height) as displayed, or None for audio and anything unreadable.

    Call only on regular files that decoded successfully (it opens them)."""
    try:
        if modality is Modality.VIDEO:
            return _video_size(path)
        if modality is Modality.AUDIO:
            return None
        if path.suffix.lower() == ".npy":
            import numpy as np

            shape = np.load(path, mmap_mode="r").shape
            return (int(shape[1]), int(shape[0])) if len(shape) >= 2 else None
        return _picture_size(path)
    except Exception:  # header probing is best effort: the file already decoded
        return None


def _picture_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        width, height = im.size
        orientation = im.getexif().get(_EXIF_ORIENTATION)
    return (height, width) if orientation in _ROTATED else (width, height)


def _video_size(path: Path) -> tuple[int, int] | None:
    import av

    with av.open(str(path)) as box:
        if not box.streams.video:
            return None
        stream = box.streams.video[0]
        return int(stream.codec_context.width), int(stream.codec_context.height)
