"""Embedding files and texts one by one, for `lbsearch embed` and scripts.

The indexer has its own pipeline; this is the direct path: classify, decode (in a worker process,
with the per-file time limit), encode every segment, report each file's vectors or its error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import LbsearchError, MediaError
from .types import MediaSpec, Modality

if TYPE_CHECKING:
    from .media.pool import DecodeResult
    from .models.encoder import Checkpoint, Encoder


@dataclass(frozen=True)
class EmbedRequest:
    config: Config
    model: str | None = None  # overrides the configured checkpoint of the modality it belongs to
    device: str = "auto"
    dtype: str = "auto"


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


class EncoderSet:
    """One encoder per modality, loaded on first use."""

    def __init__(self, request: EmbedRequest) -> None:
        self.request = request
        self._encoders: dict[Modality, Encoder] = {}
        self._checkpoints: dict[Modality, Checkpoint] = {}
        self._override: tuple[Modality, str] | None = None
        if request.model:
            from .models.encoder import open_checkpoint

            self._override = (open_checkpoint(request.model).spec.modality, request.model)

    def model_for(self, modality: Modality) -> str:
        if self._override and self._override[0] is modality:
            return self._override[1]
        return self.request.config.models.for_modality(modality)

    def checkpoint(self, modality: Modality) -> Checkpoint:
        """The modality's checkpoint from its config.json alone (no weights read): decoding can
        start, and failures can be reported, before or without loading the weights."""
        if modality not in self._checkpoints:
            from .models.encoder import open_checkpoint

            self._checkpoints[modality] = open_checkpoint(self.model_for(modality))
        return self._checkpoints[modality]

    def media_spec(self, modality: Modality) -> MediaSpec:
        return self.checkpoint(modality).spec.media_spec()

    def get(self, modality: Modality) -> Encoder:
        if modality not in self._encoders:
            from .models.encoder import load_encoder

            self._encoders[modality] = load_encoder(
                modality,
                self.model_for(modality),
                device=self.request.device,
                dtype=self.request.dtype,
                attention=self.request.config.runtime.attention,
            )
        return self._encoders[modality]


def embed_texts(
    texts: Sequence[str], modality: Modality, request: EmbedRequest
) -> Iterator[EmbedResult]:
    from .models.encoder import load_text_encoder, open_checkpoint

    model = EncoderSet(request).model_for(modality)
    # a shared tower carries the id of whichever checkpoint loaded it first: report the one asked
    model_id = open_checkpoint(model).model_id
    text_encoder = load_text_encoder(
        model,
        device=request.device,
        dtype=request.dtype,
        attention=request.config.runtime.attention,
    )
    vectors = text_encoder.encode_text(list(texts))
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
    files: Sequence[Path], forced: Modality | None, request: EmbedRequest
) -> Iterator[EmbedResult]:
    """One result per file, in the order given; decoding runs in worker processes meanwhile."""
    from .media import classify
    from .media.pool import DecodeJob, DecodePool

    encoders = EncoderSet(request)
    results: dict[int, EmbedResult] = {}
    jobs = []
    for index, path in enumerate(files):
        try:
            modality = classify(Path(path), request.config.classify, forced=forced)
        except MediaError as error:
            results[index] = _failure(Path(path), forced.value if forced else "unknown", "", error)
            continue
        spec = encoders.media_spec(modality)
        jobs.append(DecodeJob(Path(path), spec, tag=index))
    next_index = 0
    with DecodePool(request.config) as pool:
        for decoded in pool.imap(jobs):
            results[decoded.job.tag] = _embed_decoded(decoded, encoders)
            while next_index in results:
                yield results.pop(next_index)
                next_index += 1
    while next_index in results:
        yield results.pop(next_index)
        next_index += 1


def _embed_decoded(decoded: DecodeResult, encoders: EncoderSet) -> EmbedResult:
    modality = decoded.job.spec.modality
    if decoded.error is not None:
        model_id = encoders.checkpoint(modality).model_id
        return _failure(decoded.job.path, modality.value, model_id, decoded.error)
    import torch

    encoder = encoders.get(modality)
    batch = encoders.request.config.runtime.batch_size
    segments = decoded.segments
    vectors = [
        encoder.encode(torch.stack([s.pixels for s in segments[i : i + batch]]))
        for i in range(0, len(segments), batch)
    ]
    flat = torch.cat(vectors)
    return EmbedResult(
        modality=modality.value,
        model=encoder.model_id,
        path=str(decoded.job.path),
        segments=[
            SegmentVector(s.start_s, s.end_s, _as_list(v))
            for s, v in zip(segments, flat, strict=True)
        ],
    )
