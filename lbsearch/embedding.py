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
from .types import Modality

if TYPE_CHECKING:
    from .models.encoder import Encoder


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
        self._override: tuple[Modality, str] | None = None
        if request.model:
            from .models.encoder import open_checkpoint

            self._override = (open_checkpoint(request.model).spec.modality, request.model)

    def model_for(self, modality: Modality) -> str:
        if self._override and self._override[0] is modality:
            return self._override[1]
        return self.request.config.models.for_modality(modality)

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
    from .models.encoder import load_text_encoder

    model = EncoderSet(request).model_for(modality)
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
            model=text_encoder.model_id,
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
    raise LbsearchError("file embedding arrives with the media decoders", "use --text for now")
