"""The reference's tensor transforms, re-done with torch alone (no torchvision dependency).

Each function reproduces one step of LanguageBind's processors (docs: languagebind-spec section 2)
operation for operation, in float32 and in the same order, so outputs agree to rounding:
- stills (image, thermal, depth): torchvision `Resize(S, BICUBIC)` on the float tensor with the
  antialias default of torchvision >= 0.17 (True), `CenterCrop(S)`, `Normalize(mean, std)`;
- video: /255, `NormalizeVideo`, pytorchvideo `ShortSideScale(S)` (bilinear, no antialias),
  `CenterCropVideo(S)`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def still_to_input(chw: np.ndarray, size: int) -> torch.Tensor:
    """(3, H, W) float32 in the model's value range -> normalised (3, size, size) tensor."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float32))
    x = _resize_short_bicubic(x, size)
    x = _center_crop(x, size)
    return _normalize(x, (-1, 1, 1))


def _resize_short_bicubic(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision Resize(size) for a (C, H, W) float tensor: the short side becomes `size`."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)  # truncation, as torchvision
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_h, new_w) == (h, w):  # torchvision returns the input unchanged
        return x
    out = F.interpolate(
        x[None], size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True
    )
    return out[0]


def _center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision CenterCrop / CenterCropVideo: offsets rounded half-to-even by Python round."""
    h, w = x.shape[-2:]
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    return x[..., top : top + size, left : left + size]


def _normalize(x: torch.Tensor, view: tuple[int, ...]) -> torch.Tensor:
    """Normalize(mean, std): subtract then divide (not multiply by 1/std), as torchvision."""
    import torch

    mean = torch.tensor(OPENAI_MEAN, dtype=torch.float32).view(view)
    std = torch.tensor(OPENAI_STD, dtype=torch.float32).view(view)
    return x.sub(mean).div_(std).contiguous()


def frames_to_input(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB frames -> normalised (3, T, size, size) clip.

    The reference normalises full frames, resizes them bilinearly and crops the centre. Bilinear
    output pixels only read their 2 x 2 source neighbours, so this evaluates the same formula
    (PyTorch's upsample_bilinear2d weights, in float32) for the cropped outputs alone, after
    normalising only the source rows and columns they read: same numbers (to float rounding),
    about 20x less work on a 720p frame.
    """
    import torch

    _, h, w, _ = frames.shape
    if w < h:  # pytorchvideo short_side_scale: floor of the scaled long side
        new_h, new_w = math.floor((float(h) / w) * size), size
    else:
        new_h, new_w = size, math.floor((float(w) / h) * size)
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    y0, y1, wy0, wy1 = _linear_taps(h, new_h, top, size)
    x0, x1, wx0, wx1 = _linear_taps(w, new_w, left, size)
    rows, cols = np.unique(np.concatenate([y0, y1])), np.unique(np.concatenate([x0, x1]))
    src = torch.from_numpy(np.ascontiguousarray(frames))
    src = src.index_select(1, torch.from_numpy(rows)).index_select(2, torch.from_numpy(cols))
    src = src.permute(0, 3, 1, 2).contiguous() / 255.0  # (T, 3, rows, cols), as x / 255.0
    src = _normalize(src, (1, -1, 1, 1))

    def pick(x: torch.Tensor, dim: int, idx: np.ndarray, among: np.ndarray) -> torch.Tensor:
        return x.index_select(dim, torch.from_numpy(np.searchsorted(among, idx)))

    wx0_t, wx1_t = torch.from_numpy(wx0), torch.from_numpy(wx1)
    wy0_t, wy1_t = torch.from_numpy(wy0)[:, None], torch.from_numpy(wy1)[:, None]
    # PyTorch's order: along the width within each source row, then between the two rows
    rowwise = pick(src, 3, x0, cols) * wx0_t + pick(src, 3, x1, cols) * wx1_t
    out = pick(rowwise, 2, y0, rows) * wy0_t + pick(rowwise, 2, y1, rows) * wy1_t
    return out.permute(1, 0, 2, 3).contiguous()


def _linear_taps(
    in_size: int, out_size: int, start: int, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of outputs start..start+count of a bilinear resize
    (align_corners=False, no antialias), computed as PyTorch's CPU kernel does, in float32."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    dst = np.arange(start, start + count).astype(f32) + f32(0.5)
    # scale * dst - 0.5 with one rounding: the kernel's compiled code fuses it (FMA); doing the
    # same keeps weights bit-equal (two roundings shift them by up to 6e-5 on wide frames)
    src = (np.float64(scale) * dst.astype(np.float64) - 0.5).astype(f32)
    src = np.maximum(src, f32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - i0.astype(f32), f32(0), f32(1)).astype(f32)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (f32(1) - lam).astype(f32), lam
