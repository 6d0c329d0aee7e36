"""Embedding files and texts one by one, for `lbsearch embed`, `lbsearch serve` and scripts.

The indexer has its own pipeline; this is the direct path: classify, decode (in a worker process,
with the per-file time limit), embed every segment with the one embedder, report each file's
vectors or its error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import LbsearchError, MediaError
from .types import Modality

if TYPE_CHECKING:
    from .embedder import Embedder
    from .media.pool import DecodeResult


@dataclass(frozen=True)
class SegmentVector:
    start_s: float
    end_s: float
    vector: list[float]


@dataclass(frozen=True)
class EmbedResult:
    modality: str
    model: str
    path: str | None = None
    text: str | None = None
    segments: list[SegmentVector] = field(default_factory=list)
    error: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path} if self.path is not None else {"text": self.text}
        out.update(modality=self.modality, model=self.model)
        if self.error is not None:
            out.update(error=self.error, reason=self.reason)
            return out
        out["segments"] = [
            {"start_s": s.start_s, "end_s": s.end_s, "embedding": s.vector} for s in self.segments
        ]
        return out


def embed_texts(
    texts: Sequence[str], modality: Modality, embedder: Embedder
) -> Iterator[EmbedResult]:
    """One result per text, from the text tower of `modality`'s checkpoint."""
    vectors = embedder.embed_texts(modality, list(texts))
    model_id = embedder.model_id(modality)
    for text, vector in zip(texts, vectors, strict=True):
        yield EmbedResult(
            modality="text",
            model=model_id,
            text=text,
            segments=[SegmentVector(0.0, 0.0, _as_list(vector))],
        )


def _as_list(vector: Any) -> list[float]:
    # 9 significant digits round-trip a float32 exactly, without double-precision noise.
    return [float(f"{value:.9g}") for value in vector.tolist()]


def _failure(path: Path, modality: str, model: str, error: LbsearchError) -> EmbedResult:
    reason = error.reason if isinstance(error, MediaError) else type(error).__name__
    detail = error.detail if isinstance(error, MediaError) else error.message
    return EmbedResult(modality=modality, model=model, path=str(path), error=detail, reason=reason)


def embed_files(
    files: Sequence[Path], forced: Modality | None, embedder: Embedder, config: Config
) -> Iterator[EmbedResult]:
    """One result per file, in the order given; decoding runs in worker processes meanwhile."""
    from .media import classify
    from .media.pool import DecodeJob, DecodePool

    results: dict[int, EmbedResult] = {}
    jobs = []
    for index, path in enumerate(files):
        try:
            modality = classify(Path(path), config.classify, forced=forced)
        except MediaError as error:
            results[index] = _failure(Path(path), forced.value if forced else "unknown", "", error)
            continue
        jobs.append(DecodeJob(Path(path), embedder.media_spec(modality), tag=index))
    next_index = 0
    if jobs:
        with DecodePool(config) as pool:
            for decoded in pool.imap(jobs):
                results[decoded.job.tag] = _embed_decoded(decoded, embedder)
                while next_index in results:
                    yield results.pop(next_index)
                    next_index += 1
    while next_index in results:
        yield results.pop(next_index)
        next_index += 1


def _embed_decoded(decoded: DecodeResult, embedder: Embedder) -> EmbedResult:
    modality = decoded.job.spec.modality
    model_id = embedder.model_id(modality)
    if decoded.error is not None:
        return _failure(decoded.job.path, modality.value, model_id, decoded.error)
    segments = decoded.segments
    vectors = embedder.embed_segments(modality, segments)
    return EmbedResult(
        modality=modality.value,
        model=model_id,
        path=str(decoded.job.path),
        segments=[
            SegmentVector(s.start_s, s.end_s, _as_list(v))
            for s, v in zip(segments, vectors, strict=True)
        ],
    )
