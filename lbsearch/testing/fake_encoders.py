"""A deterministic stand-in for the LanguageBind encoders, for pipeline, search and CLI tests.

Vectors depend only on the segment's pixels (a seeded projection), so equal content gives equal
vectors and tests run in milliseconds. Calls are counted per modality. It implements the
`lbsearch.embedder.Embedder` protocol: a text's vector is a unit vector seeded by a hash of (the
modality's model id, the text).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..embedder.protocol import Encoding
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
        self.texts: Counter[Modality] = Counter()  # texts encoded, per modality asked

    def model_id(self, modality: Modality) -> str:
        return self.models.get(modality, f"fake/{modality.value}-{self.model_suffix}")

    def media_spec(self, modality: Modality) -> MediaSpec:
        return MediaSpec(modality, image_size=self.image_size, num_frames=8, num_mel_bins=112)

    def encoding(self, modality: Modality) -> Encoding:
        return Encoding("fake", "float32")

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
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

    def embed_texts(self, modality: Modality, texts: Sequence[str]) -> np.ndarray:
        self.texts[modality] += len(texts)
        rows = [text_vector(self.model_id(modality), text, self.dim) for text in texts]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)


def text_vector(model_id: str, text: str, dim: int) -> np.ndarray:
    """A unit vector that depends only on (model_id, text): the fake's text embedding."""
    digest = hashlib.sha256(f"{model_id}\0{text}".encode()).digest()
    vector = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)
