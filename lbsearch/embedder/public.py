"""`lbsearch.load_encoder`: one tower of one checkpoint, on the back-end asked for.

The low-level public API. `backend="torch"` gives the torch `Encoder` (tensors in and out, as
before); `backend="onnxruntime"` gives an `OnnxEncoder` with the same methods on numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from ..models.checkpoint import Checkpoint, open_checkpoint
from ..types import Modality

if TYPE_CHECKING:
    from .onnx.sessions import OnnxMediaTower, OnnxTextTower


@dataclass
class OnnxEncoder:
    """A modality tower on ONNX Runtime: `encode` takes (B, *input_shape) pixels (numpy, or a
    CPU tensor) and returns (B, dim) float32 unit rows; `encode_text` uses the same
    checkpoint's text tower (loaded on first use)."""

    checkpoint: Checkpoint
    modality: Modality
    tower: OnnxMediaTower
    threads: int = 0
    _text: OnnxTextTower | None = field(default=None, repr=False)

    @property
    def model_id(self) -> str:
        return self.checkpoint.model_id

    @property
    def dim(self) -> int:
        return self.tower.dim

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.tower.input_shape

    def encode(self, pixel_values: Any) -> np.ndarray:
        return self.tower.encode(np.asarray(pixel_values, dtype=np.float32))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        if self._text is None:
            from .onnx import load_onnx_text_tower

            self._text = load_onnx_text_tower(self.checkpoint, threads=self.threads)
        return self._text.encode(texts)


def load_encoder(
    modality: Modality | str,
    model: str | None = None,
    *,
    backend: str = "torch",
    device: str = "auto",
    dtype: str = "auto",
    attention: str = "auto",
    threads: int = 0,
) -> Any:
    """The encoder for `modality` from `model` (repo id or directory; default from config.toml).

    backend "torch" (CPU, CUDA, MPS; float32, bfloat16, float16) or "onnxruntime" (CPU; float32,
    or int8 weights; the tower is exported into the user cache on first use)."""
    if backend == "torch":
        from ..models import encoder

        return encoder.load_encoder(
            modality, model, device=device, dtype=dtype, attention=attention
        )
    if backend != "onnxruntime":
        raise UsageError(f"unknown backend {backend!r}", "use torch or onnxruntime")
    if device not in ("auto", "cpu"):
        raise UsageError(f"onnxruntime runs on the CPU, not {device!r}", "use backend='torch'")
    from .onnx import load_onnx_media_tower

    kind = Modality.parse(str(modality))
    checkpoint = open_checkpoint(model or _default_model(kind))
    tower = load_onnx_media_tower(
        checkpoint, kind, dtype="float32" if dtype == "auto" else dtype, threads=threads
    )
    return OnnxEncoder(checkpoint, kind, tower, threads)


def _default_model(modality: Modality) -> str:
    from ..config import load_config

    return load_config().models.for_modality(modality)
