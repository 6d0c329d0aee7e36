"""Still pictures: images and thermal (RGB, EXIF), depth maps (DepthNorm), shapes and values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest
import torch
from PIL import Image

from lbsearch.config import Config
from lbsearch.errors import MediaError
from lbsearch.media import decode
from lbsearch.media.transforms import OPENAI_MEAN, OPENAI_STD
from lbsearch.types import MediaSpec, Modality

CFG = Config()  # the packaged defaults; the user's settings never reach tests
IMAGE = MediaSpec(Modality.IMAGE)
DEPTH = MediaSpec(Modality.DEPTH)


def normalised(value: float) -> torch.Tensor:
    """What a uniform picture of `value` (0..1 in every channel) becomes."""
    mean, std = torch.tensor(OPENAI_MEAN), torch.tensor(OPENAI_STD)
    return ((torch.full((3,), value) - mean) / std).view(3, 1, 1)


MODES = [
    (mode, suffix)
    for mode in ("RGB", "L", "LA", "RGBA", "P", "CMYK", "1", "I;16")
    for suffix in (".png", ".tif")
    if (mode, suffix) != ("CMYK", ".png")  # PNG has no CMYK
]


@pytest.mark.parametrize(("mode", "suffix"), MODES)
def test_every_pillow_mode_becomes_rgb(tmp_path: Path, mode: str, suffix: str) -> None:
    path = mf.image(tmp_path / f"x{suffix}", 50, 30, mode=mode)
    (seg,) = decode(path, IMAGE, CFG)
    assert seg.pixels.shape == (3, 224, 224)
    assert seg.pixels.dtype == torch.float32
    assert torch.isfinite(seg.pixels).all()
    assert (seg.start_s, seg.end_s, seg.modality) == (0.0, 0.0, Modality.IMAGE)


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".bmp", ".gif", ".tiff"])
def test_formats(tmp_path: Path, suffix: str) -> None:
    (seg,) = decode(mf.image(tmp_path / f"x{suffix}", 64, 40), IMAGE, CFG)
    assert seg.pixels.shape == (3, 224, 224)


def test_grey_equals_its_rgb_version(tmp_path: Path) -> None:
    grey = mf.image(tmp_path / "grey.png", 40, 30, mode="L")
    rgb = tmp_path / "rgb.png"
    Image.open(grey).convert("RGB").save(rgb)
    assert torch.equal(decode(grey, IMAGE, CFG)[0].pixels, decode(rgb, IMAGE, CFG)[0].pixels)


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(path)  # transparent black
    (seg,) = decode(path, IMAGE, CFG)
    assert torch.allclose(seg.pixels, normalised(1.0).expand(3, 224, 224), atol=1e-5)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rotated = mf.image(tmp_path / "exif.png", 60, 40, exif_orientation=6)  # 90 degrees clockwise
    upright = tmp_path / "upright.png"
    Image.open(rotated).transpose(Image.Transpose.ROTATE_270).save(upright)
    assert torch.equal(decode(rotated, IMAGE, CFG)[0].pixels, decode(upright, IMAGE, CFG)[0].pixels)


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 255, 255), (0, 0, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    (seg,) = decode(path, IMAGE, CFG)
    assert torch.allclose(seg.pixels, normalised(1.0).expand(3, 224, 224), atol=1e-5)


@pytest.mark.parametrize("size", [56, 224, 336])
def test_image_size_follows_the_spec(tmp_path: Path, size: int) -> None:
    path = mf.image(tmp_path / "x.png", 90, 50)
    (seg,) = decode(path, MediaSpec(Modality.THERMAL, image_size=size), CFG)
    assert seg.pixels.shape == (3, size, size)
    assert seg.modality is Modality.THERMAL


def test_resize_is_antialiased_bicubic_without_clamping(tmp_path: Path) -> None:
    # a hard black/white edge: bicubic overshoots past white, and torchvision does not clamp
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, 40:] = 255
    path = tmp_path / "edge.png"
    Image.fromarray(arr).save(path)
    (seg,) = decode(path, IMAGE, CFG)
    assert (seg.pixels > normalised(1.0) + 1e-3).any()


def test_depth_norm_millimetres(tmp_path: Path) -> None:
    path = tmp_path / "d.png"
    Image.fromarray(np.full((30, 40), 5000, np.uint16)).save(path)  # 5 m everywhere
    (seg,) = decode(path, DEPTH, CFG)
    assert torch.allclose(seg.pixels, normalised(0.5).expand(3, 224, 224), atol=1e-5)


@pytest.mark.parametrize(("mm", "expected"), [(0, 0.001), (3, 0.001), (65535, 1.0)])
def test_depth_is_clipped_to_min_and_max(tmp_path: Path, mm: int, expected: float) -> None:
    path = tmp_path / "d.png"
    Image.fromarray(np.full((8, 8), mm, np.uint16)).save(path)
    (seg,) = decode(path, DEPTH, CFG)
    assert torch.allclose(seg.pixels, normalised(expected).expand(3, 224, 224), atol=1e-5)


def test_depth_max_depth_from_spec(tmp_path: Path) -> None:
    path = tmp_path / "d.tif"
    Image.fromarray(np.full((8, 8), 2000, np.uint16)).save(path)
    (seg,) = decode(path, dataclasses.replace(DEPTH, max_depth=4.0), CFG)
    assert torch.allclose(seg.pixels, normalised(0.5).expand(3, 224, 224), atol=1e-5)


def test_depth_npy_in_metres_with_holes(tmp_path: Path) -> None:
    metres = np.full((10, 10), 2.5, np.float32)
    np.save(tmp_path / "d.npy", metres)
    (seg,) = decode(tmp_path / "d.npy", DEPTH, CFG)
    assert torch.allclose(seg.pixels, normalised(0.25).expand(3, 224, 224), atol=1e-5)
    (seg,) = decode(mf.depth_npy(tmp_path / "holes.npy", 30, 20), DEPTH, CFG)
    assert torch.isfinite(seg.pixels).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: mf.image(p / "grey8.png", 20, 20, mode="L"),
        lambda p: mf.image(p / "rgba.png", 20, 20, mode="RGBA"),
        lambda p: mf.image(p / "rgb.tif", 20, 20, mode="RGB"),
    ],
)
def test_not_a_depth_map(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MediaError) as info:
        decode(make(tmp_path), DEPTH, CFG)
    assert info.value.reason == "not_depth_map"


def test_npy_that_is_not_a_map(tmp_path: Path) -> None:
    np.save(tmp_path / "rgb.npy", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(MediaError) as info:
        decode(tmp_path / "rgb.npy", DEPTH, CFG)
    assert info.value.reason == "not_depth_map"


def test_deterministic(tmp_path: Path) -> None:
    path = mf.image(tmp_path / "x.jpg", 300, 200)
    assert torch.equal(decode(path, IMAGE, CFG)[0].pixels, decode(path, IMAGE, CFG)[0].pixels)


def test_a_large_picture_is_decoded_with_one_float_copy(tmp_path: Path) -> None:
    """Before: up to three float32 copies of the whole picture at once (the cast, the
    division, the contiguous copy), 27 bytes a pixel: a 121-megapixel PNG, under Pillow's pixel
    limit, ran a decode worker past its 4 GB ([media] max_worker_memory_mb) and was skipped as
    out of memory. Now one copy, divided in place (15 bytes a pixel), and the same tensor."""
    import tracemalloc

    from lbsearch.media.image import load_picture
    from lbsearch.media.transforms import still_to_input

    path = tmp_path / "big.png"
    rows = np.random.default_rng(3).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    Image.fromarray(rows).save(path)
    with path.open("rb") as handle:
        tracemalloc.start()
        try:
            got = load_picture(handle, path, 224, 10**9)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 18 * rows.shape[0] * rows.shape[1], f"{peak / rows[..., 0].size:.1f} B/pixel"
    expected = still_to_input(rows.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0), 224)
    assert torch.equal(got, expected)
