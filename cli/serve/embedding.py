"""`POST /api/embed`: vectors for uploaded files or texts, shaped like `lbsearch embed --json`.

Texts go to the service's embedder (the towers that answer searches, already warm). Files are
decoded in the service's shared decode pool (worker processes, the per-file time limit, at most
`max_jobs` at once) and embedded part by part here; a client that goes away stops the work
between parts. Results name an upload as the client sent it, never by its private temporary
path.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from lbsearch.embedding import EmbedResult, SegmentVector
from lbsearch.embedding import embed_texts as core_embed_texts
from lbsearch.errors import LbsearchError, MediaError
from lbsearch.types import Modality

from .examples import Cancelled

if TYPE_CHECKING:
    from .service import SearchService


def embed_texts(service: SearchService, texts: list[str], modality: str) -> list[EmbedResult]:
    return list(core_embed_texts(texts, Modality.parse(modality), service.encoders))


def embed_uploads(
    service: SearchService,
    uploads: list[tuple[Path, str]],
    forced: str | None,
    cancelled: threading.Event,
) -> list[EmbedResult]:
    """One result per (saved path, name as sent), in order; undecodable files carry an error."""
    modality = Modality.parse(forced) if forced else None
    return [_embed_one(service, path, shown, modality, cancelled) for path, shown in uploads]


def _embed_one(
    service: SearchService,
    path: Path,
    shown: str,
    forced: Modality | None,
    cancelled: threading.Event,
) -> EmbedResult:
    from lbsearch.media import classify

    embedder = service.encoders
    try:
        modality = classify(path, service.config.classify, forced=forced)
    except MediaError as error:
        return _failure(shown, forced.value if forced else "unknown", "", error)
    model = embedder.model_id(modality)
    ticket = service.pool.submit(path, embedder.media_spec(modality), cancelled)
    segments: list[SegmentVector] = []
    try:
        for part in ticket.parts(timeout_s=4 * service.config.media.decode_timeout_s or None):
            if cancelled.is_set():
                raise Cancelled(shown)
            vectors = embedder.embed_segments(modality, part)
            segments += [
                SegmentVector(s.start_s, s.end_s, _as_list(v))
                for s, v in zip(part, vectors, strict=True)
            ]
    except MediaError as error:
        return _failure(shown, modality.value, model, error)
    finally:
        ticket.cancel()
    if cancelled.is_set():  # the client left while its file was decoding
        raise Cancelled(shown)
    return EmbedResult(modality=modality.value, model=model, path=shown, segments=segments)


def _failure(shown: str, modality: str, model: str, error: LbsearchError) -> EmbedResult:
    reason = error.reason if isinstance(error, MediaError) else type(error).__name__
    detail = error.detail if isinstance(error, MediaError) else error.message
    return EmbedResult(modality=modality, model=model, path=shown, error=detail, reason=reason)


def _as_list(vector: object) -> list[float]:
    # as lbsearch.embedding writes them: 9 significant digits round-trip a float32 exactly
    return [float(f"{value:.9g}") for value in vector.tolist()]  # type: ignore[attr-defined]
