"""`POST /api/embed`: vectors for uploaded files or texts, shaped like `lbsearch embed --json`.

The core's `lbsearch.embedding` does the work with the service's embedder (the towers that
answer searches, already warm); files decode in its worker pool, with the per-file time limit.
The only thing added here: results name an upload as the client sent it, never by its private
temporary path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from lbsearch.embedding import EmbedResult, embed_files
from lbsearch.embedding import embed_texts as core_embed_texts
from lbsearch.types import Modality

if TYPE_CHECKING:
    from .service import SearchService


def embed_texts(service: SearchService, texts: list[str], modality: str) -> list[EmbedResult]:
    return list(core_embed_texts(texts, Modality.parse(modality), service.encoders))


def embed_uploads(
    service: SearchService, uploads: list[tuple[Path, str]], forced: str | None
) -> list[EmbedResult]:
    """One result per (saved path, name as sent), in order; undecodable files carry an error."""
    modality = Modality.parse(forced) if forced else None
    paths = [path for path, _ in uploads]
    results = embed_files(paths, modality, service.encoders, service.config)
    return [
        dataclasses.replace(result, path=shown)
        for result, (_, shown) in zip(results, uploads, strict=True)
    ]
