"""A deterministic stand-in for the LanguageBind encoders, for pipeline and CLI tests.

Vectors depend only on the segment's pixels (a seeded projection), so equal content gives equal
vectors and tests run in milliseconds. Calls are counted per modality.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from ..types import MediaSpec, Modality, Segment


class FakeEncoders:
    def __init__(
        self,
        dim: int = 16,
        model_suffix: str = "v1",
        image_size: int = 32,
        models: dict[Modality, str] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.dim = dim
        self.model_suffix = model_suffix
        self.models = models or {}
        self.delay_s = delay_s
        self.image_size = image_size
        self.calls: Counter[Modality] = Counter()
        self.segments: Counter[Modality] = Counter()

    def model_id(self, modality: Modality) -> str:
        return self.models.get(modality, f"fake/{modality.value}-{self.model_suffix}")

    def media_spec(self, modality: Modality) -> MediaSpec:
        return MediaSpec(modality, image_size=self.image_size, num_frames=8, num_mel_bins=112)

    def encode(self, modality: Modality, segments: list[Segment]) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)  # a slow encoder, for interruption and crash tests
        self.calls[modality] += 1
        self.segments[modality] += len(segments)
        rows = [self._vector(segment) for segment in segments]
        return np.stack(rows).astype(np.float32)

    def _vector(self, segment: Segment) -> np.ndarray:
        flat = segment.pixels.reshape(-1).numpy().astype(np.float64)
        projection = np.random.default_rng(flat.size).standard_normal(
            (self.dim, min(flat.size, 4096))
        )
        vector = projection @ flat[: projection.shape[1]]
        return vector / (np.linalg.norm(vector) or 1.0)
