"""Towers on PyTorch (CPU, CUDA, MPS): segments or texts in, CPU float32 numpy rows out.

Whatever device a tower runs on, its output crosses back to host memory here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..models.checkpoint import Checkpoint
from ..types import Modality, Segment
from .options import EmbedderOptions
from .protocol import Encoding

if TYPE_CHECKING:
    import torch

    from ..models.encoder import Placement


def placement(options: EmbedderOptions, dtype: str) -> Placement:
    import torch

    from ..models.encoder import Placement

    if options.threads > 0:
        torch.set_num_threads(options.threads)
    return Placement.resolve(options.device, dtype, options.attention)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """Float32 numpy on the CPU, from a tensor on any device and in any dtype."""
    return tensor.detach().cpu().float().numpy().astype(np.float32, copy=False)


class TorchMediaTower:
    def __init__(
        self, checkpoint: Checkpoint, modality: Modality, options: EmbedderOptions
    ) -> None:
        from ..models.encoder import Encoder

        where = placement(options, options.media_dtype())
        self._encoder = Encoder(checkpoint, where, modality)
        self._pin = where.device.type == "cuda"
        self.dim = self._encoder.dim
        self.batch_size = options.batch_size_for(where.device.type)
        self.encoding = Encoding("torch", dtype_name(where.dtype))

    def encode(self, segments: Sequence[Segment]) -> np.ndarray:
        import torch

        pixels = torch.stack([segment.pixels for segment in segments])
        if self._pin:
            # Page-locked: the copy to the GPU runs without staging through a driver buffer. It
            # does not overlap the previous batch's compute yet: each batch is synchronised
            # when its vectors come back (issue 16 item 5, left for a session with a GPU).
            pixels = pixels.pin_memory()
        return to_host(self._encoder.encode(pixels))


class TorchTextTower:
    def __init__(self, checkpoint: Checkpoint, options: EmbedderOptions) -> None:
        from ..models.encoder import load_text_encoder

        dtype = options.text_dtype()
        self._encoder = load_text_encoder(
            str(checkpoint.directory),
            device=options.device,
            dtype=dtype,
            attention=options.attention,
        )
        self._encoder.batch_size = max(1, options.text_batch_size)
        self.dim = self._encoder.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        return to_host(self._encoder.encode_text(texts))


def torch_encoding(options: EmbedderOptions) -> Encoding:
    """The dtype "auto" resolves to on the device asked for (imports torch, reads no weights)."""
    return Encoding("torch", dtype_name(placement(options, options.media_dtype()).dtype))
