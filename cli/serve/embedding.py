"""`POST /api/embed`: vectors for uploaded files or texts, shaped like `lbsearch embed --json`.

Uses the service's encoders through the `Embedder` protocol (model_id, media_spec,
embed_segments, embed_texts): the towers that answer searches answer these too, already warm.
Decoding goes through lbsearch.media (classify, decode), with its guards and time limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbsearch.embedder.protocol import Embedder
from lbsearch.embedding import EmbedResult, SegmentVector
from lbsearch.errors import LbsearchError, MediaError, UsageError
from lbsearch.types import Modality

if TYPE_CHECKING:
    from .service import SearchService


def as_embedder(encoders: Any) -> Embedder:
    if not isinstance(encoders, Embedder):
        raise LbsearchError(
            "the loaded encoders cannot embed segments",
            "this build's encoders predate the Embedder protocol; update lbsearch",
        )
    return encoders


def embed_texts(encoders: Any, texts: list[str], modality_name: str) -> list[EmbedResult]:
    modality = Modality.parse(modality_name)
    embedder = as_embedder(encoders)
    vectors = embedder.embed_texts(modality, texts)
    model = embedder.model_id(modality)
    return [
        EmbedResult(
            modality="text",
            model=model,
            text=text,
            segments=[SegmentVector(0.0, 0.0, _as_list(vector))],
        )
        for text, vector in zip(texts, vectors, strict=True)
    ]


def embed_upload(
    service: SearchService, path: Path, shown_name: str, forced: str | None
) -> EmbedResult:
    """One uploaded file's segments and vectors, or the reason it cannot be embedded."""
    from lbsearch.media import classify, decode

    embedder = as_embedder(service.encoders)
    config = service.config
    modality = Modality.parse(forced) if forced else None
    try:
        kind = classify(path, config.classify, forced=modality)
        segments = decode(path, embedder.media_spec(kind), config)
        vectors = embedder.embed_segments(kind, segments)
    except MediaError as error:
        return EmbedResult(
            modality=modality.value if modality else "unknown",
            model="",
            path=shown_name,
            error=error.detail,
            reason=error.reason,
        )
    except UsageError:
        raise
    return EmbedResult(
        modality=kind.value,
        model=embedder.model_id(kind),
        path=shown_name,
        segments=[
            SegmentVector(s.start_s, s.end_s, _as_list(v))
            for s, v in zip(segments, vectors, strict=True)
        ],
    )


def _as_list(vector: Any) -> list[float]:
    # as `lbsearch embed`: 9 significant digits round-trip a float32 exactly
    return [float(f"{value:.9g}") for value in vector.tolist()]
