"""Still pictures: images and thermal pictures (RGB) and depth maps (one channel, millimetres).

Deliberate differences from the reference (which crashes or mis-reads these): pictures are made
RGB (greyscale, palette, CMYK, alpha all work; alpha is composited over white because transparent
pixels often hold arbitrary colours) and the EXIF orientation is applied. Depth maps are read raw,
as the reference's `cv2.imread(IMREAD_UNCHANGED)` does (no EXIF rotation), and anything that is
not a single-channel 16-bit / 32-bit / float map is refused instead of being mis-scaled.
"""

from __future__ import annotations

import functools
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from ..errors import MediaError
from .reasons import media_error
from .transforms import still_to_input

if TYPE_CHECKING:
    import torch
    from PIL import Image as PILImage

# Pillow modes that hold one channel of >8-bit or float samples: the only acceptable depth maps.
_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_MIN_DEPTH_M = 0.01  # DepthNorm's min_depth
_MM_PER_M = 1000.0  # DepthNorm's scale: PNG/TIFF depth is in millimetres


def load_picture(handle: BinaryIO, path: Path, size: int, max_pixels: int) -> torch.Tensor:
    """Image or thermal picture -> normalised (3, size, size) tensor."""
    with _open_image(handle, path, max_pixels) as im:
        rgb = _to_rgb(_apply_exif(im, path))
        arr = np.asarray(rgb, dtype=np.uint8)
    del rgb
    # ToTensor: HWC uint8 -> CHW float32 in [0, 1], divided as torchvision does. One float
    # copy, divided in place: a picture near the pixel limit (179 MP) is 2 GB as float32, and
    # each extra copy could push a worker past [media] max_worker_memory_mb.
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
    del arr
    chw /= np.float32(255.0)
    return still_to_input(chw, size)


def load_depth(
    handle: BinaryIO, path: Path, size: int, max_pixels: int, max_depth: float
) -> torch.Tensor:
    """Depth map (16-bit PNG/TIFF in mm, or .npy in metres) -> normalised (3, size, size)."""
    if _is_npy(handle):
        metres = _read_npy_depth(handle, path, max_pixels)
    else:
        with _open_image(handle, path, max_pixels) as im:
            metres = _depth_image_metres(im, path)
    depth = _depth_norm(metres, max_depth)
    return still_to_input(np.broadcast_to(depth, (3, *depth.shape)), size)


@contextmanager
def _open_image(handle: BinaryIO, path: Path, max_pixels: int) -> Iterator[PILImage.Image]:
    """Open and fully decode the first frame, mapping Pillow's many failure types to reasons."""
    from PIL import Image, UnidentifiedImageError

    register_optional_formats()
    saved = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; make both errors
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_pixels if max_pixels > 0 else None
            with Image.open(handle) as im:
                _check_pixels(im.size, path, max_pixels)
                im.seek(0)  # GIF/TIFF/WebP animations: the first frame
                im.load()
                yield im
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise media_error(path, "decompression_bomb", str(exc)) from None
    except UnidentifiedImageError:
        raise media_error(path, "corrupt", "not a picture Pillow can read") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise _image_failure(path, exc) from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _check_pixels(wh: tuple[int, int], path: Path, max_pixels: int) -> None:
    if max_pixels > 0 and wh[0] * wh[1] > max_pixels:
        detail = f"{wh[0]}x{wh[1]} = {wh[0] * wh[1]} pixels > limit {max_pixels}"
        raise media_error(path, "decompression_bomb", detail)


def _image_failure(path: Path, exc: Exception) -> MediaError:
    text = f"{type(exc).__name__}: {exc}"
    if "Decompressed Data Too Large" in str(exc):  # PNG text chunk bomb (zlib bomb)
        return media_error(path, "decompression_bomb", text)
    if isinstance(exc, EOFError | struct.error) or "truncated" in str(exc).lower():
        return media_error(path, "truncated", text)
    if isinstance(exc, MemoryError):
        return media_error(path, "decompression_bomb", text)
    if isinstance(exc, OSError | SyntaxError | ValueError | zlib.error | IndexError | TypeError):
        return media_error(path, "corrupt", text)
    return media_error(path, "decode_error", text)


def _apply_exif(im: PILImage.Image, path: Path) -> PILImage.Image:
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not lose an otherwise good picture
        return im


def _to_rgb(im: PILImage.Image) -> PILImage.Image:
    """Any Pillow mode -> RGB; 16-bit/float greys are scaled to 8 bits, alpha over white."""
    from PIL import Image

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or grey.max() > 255 else 255.0
        if im.mode == "F":
            top = max(float(np.nanmax(grey)), 1e-12)
        im = Image.fromarray(
            np.clip(np.nan_to_num(grey) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        )
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _depth_image_metres(im: PILImage.Image, path: Path) -> np.ndarray:
    if im.mode not in _DEPTH_MODES:
        bands = len(im.getbands())
        detail = f"Pillow mode {im.mode} ({bands} channel(s)); need one 16-bit or float channel"
        raise media_error(path, "not_depth_map", detail)
    raw = np.asarray(im).astype(np.float32)  # cv2.imread(...).astype(float32) in the reference
    return raw / np.float32(_MM_PER_M)


def _is_npy(handle: BinaryIO) -> bool:
    head = handle.read(6)
    handle.seek(0)
    return head == b"\x93NUMPY"


def _read_npy_depth(handle: BinaryIO, path: Path, max_pixels: int) -> np.ndarray:
    """A .npy depth map in metres: 2-D (or H x W x 1), numeric; non-finite values become 0."""
    try:
        arr = np.load(handle, allow_pickle=False)
    except Exception as exc:  # ValueError (pickled/object arrays), EOFError, OSError
        reason = "truncated" if isinstance(exc, EOFError) or "size" in str(exc) else "corrupt"
        raise media_error(path, reason, f"cannot read .npy: {exc}") from None
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2 or arr.dtype.kind not in "uif" or min(arr.shape) == 0:
        detail = f"array of shape {arr.shape} and dtype {arr.dtype}; need a 2-D numeric map"
        raise media_error(path, "not_depth_map", detail)
    _check_pixels((arr.shape[1], arr.shape[0]), path, max_pixels)
    return np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _depth_norm(metres: np.ndarray, max_depth: float) -> np.ndarray:
    """DepthNorm of the reference (after its mm -> m step): clip to [0.01, max] m, scale to 0..1."""
    d = np.clip(metres, np.float32(_MIN_DEPTH_M), None)
    if max_depth != 0:
        d = np.clip(d, None, np.float32(max_depth))
        d /= np.float32(max_depth)
    else:  # the reference's max_depth == 0 mode: relative depth
        d /= d.max()
    return d.astype(np.float32, copy=False)


@functools.cache
def register_optional_formats() -> None:
    """HEIC/HEIF through pillow-heif when it is installed (an optional extra); once."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()
