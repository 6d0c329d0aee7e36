"""One embedding service for the indexer, `lbsearch embed`, `query`, `browse` and `serve`.

`Embedder` is the protocol; `open_embedder` builds the LanguageBind implementation from the
settings (back-end, device, dtype) and per-modality checkpoint overrides.
"""

from __future__ import annotations

from .protocol import Embedder, Encoding

__all__ = ["Embedder", "Encoding"]
