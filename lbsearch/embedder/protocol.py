"""What every front end and the indexer need from encoders: one protocol, one implementation.

Callers never see a tensor or a device: vectors come back as float32 numpy rows on the CPU, each
of unit length. Batching, device placement and the back-end (torch or ONNX Runtime) are the
embedder's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import MediaSpec, Modality, Segment


@dataclass(frozen=True)
class Encoding:
    """How a modality's vectors are computed, besides the checkpoint: the back-end and dtype.

    The library records it per modality next to the model id; a change re-embeds the modality
    (int8 vectors differ from float32 ones)."""

    backend: str  # "torch" | "onnxruntime" | "fake"
    dtype: str  # "float32" | "bfloat16" | "float16" | "int8"

    def __str__(self) -> str:
        return f"{self.backend}/{self.dtype}"


@runtime_checkable
class Embedder(Protocol):
    def model_id(self, modality: Modality) -> str:
        """The checkpoint `modality` is embedded with, as recorded in a library (repo id, or the
        resolved directory of a local checkpoint)."""
        ...

    def encoding(self, modality: Modality) -> Encoding:
        """The back-end and dtype `modality`'s media tower runs with (no weights read)."""
        ...

    def media_spec(self, modality: Modality) -> MediaSpec:
        """What decoded input must look like, from config.json alone (no weights read)."""
        ...

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        """(len(segments), dim) float32 unit rows; batches inside; the tower loads on first use."""
        ...

    def embed_texts(self, modality: Modality, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit rows from the text tower of `modality`'s checkpoint;
        towers with identical weights are loaded and run once."""
        ...


class VectorsInFlight(Protocol):
    """Vectors a device is still computing: the caller prepares the next batch meanwhile."""

    def ready(self) -> bool:
        """True once `result` would not wait."""
        ...

    def result(self) -> np.ndarray:
        """The float32 unit rows, waiting for the device if it is not done."""
        ...


@dataclass(frozen=True)
class Computed:
    """Vectors already on the host (a CPU back-end computes while it is called)."""

    vectors: np.ndarray

    def ready(self) -> bool:
        return True

    def result(self) -> np.ndarray:
        return self.vectors


@dataclass(frozen=True)
class Joined:
    """The batches of one call, in order."""

    parts: Sequence[VectorsInFlight]

    def ready(self) -> bool:
        return all(part.ready() for part in self.parts)

    def result(self) -> np.ndarray:
        return np.concatenate([part.result() for part in self.parts]).astype(np.float32, copy=False)


@runtime_checkable
class StreamingEmbedder(Embedder, Protocol):
    """An Embedder whose device computes while the caller goes on (CUDA)."""

    def submit_segments(self, modality: Modality, segments: Sequence[Segment]) -> VectorsInFlight:
        """`embed_segments` without waiting: the rows come from the returned object."""
        ...


def submit_segments(
    embedder: Embedder, modality: Modality, segments: Sequence[Segment]
) -> VectorsInFlight:
    """Start embedding `segments`; any Embedder (one that cannot stream computes them now)."""
    if isinstance(embedder, StreamingEmbedder):
        return embedder.submit_segments(modality, segments)
    return Computed(embedder.embed_segments(modality, segments))
