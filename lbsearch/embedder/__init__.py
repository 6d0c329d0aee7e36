"""One embedding service for the indexer, `lbsearch embed`, `query`, `browse` and `serve`.

`Embedder` is the protocol; `open_embedder` builds the LanguageBind implementation from the
settings (back-end, device, dtype) and per-modality checkpoint overrides.
"""

from __future__ import annotations

from .languagebind import LanguageBindEmbedder, open_embedder, override_for
from .options import EmbedderOptions
from .protocol import Embedder, Encoding

__all__ = [
    "Embedder",
    "EmbedderOptions",
    "Encoding",
    "LanguageBindEmbedder",
    "open_embedder",
    "override_for",
]
