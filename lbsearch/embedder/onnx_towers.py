"""Towers on ONNX Runtime (CPU): float32, or int8 weights for media towers.

Exports happen once per checkpoint into the user cache (lbsearch.embedder.onnx); running them
needs neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..models.checkpoint import Checkpoint
from ..types import Modality, Segment
from .options import ONNX, EmbedderOptions
from .protocol import Computed, Encoding


class OnnxMediaTowerAdapter:
    def __init__(
        self,
        checkpoint: Checkpoint,
        modality: Modality,
        options: EmbedderOptions,
        notify: Callable[[str], None] | None,
    ) -> None:
        from .onnx import load_onnx_media_tower

        dtype = "int8" if options.is_int8 else "float32"
        self._tower = load_onnx_media_tower(
            checkpoint, modality, dtype=dtype, threads=options.threads, notify=notify
        )
        self.dim = self._tower.dim
        self.batch_size = options.batch_size_for("cpu")
        self.encoding = Encoding(ONNX, dtype)

    def encode(self, segments: Sequence[Segment]) -> np.ndarray:
        pixels = np.stack([np.asarray(segment.pixels, dtype=np.float32) for segment in segments])
        return self._tower.encode(pixels)

    def submit(self, segments: Sequence[Segment]) -> Computed:
        return Computed(self.encode(segments))


class OnnxTextTowerAdapter:
    def __init__(
        self,
        checkpoint: Checkpoint,
        options: EmbedderOptions,
        notify: Callable[[str], None] | None,
    ) -> None:
        from .onnx import load_onnx_text_tower

        # Every core (threads 0), as the media towers: a short text reads all 340 MB of a
        # ViT-L text tower's weights, and two threads read them faster than one (2 cores: a
        # warm 10k-segment query 34 against 47 ms p50; under a running indexer 39 against 41).
        self._tower = load_onnx_text_tower(
            checkpoint, threads=options.threads, notify=notify, quick_start=options.quick_start
        )
        self.dim = self._tower.dim
        self._batch = max(1, options.text_batch_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        chunks = [texts[i : i + self._batch] for i in range(0, len(texts), self._batch)]
        return np.concatenate([self._tower.encode(chunk) for chunk in chunks])
