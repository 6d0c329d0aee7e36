"""The embedder an encoder actor builds: the configured LanguageBind checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from lbsearch.config import Config
from lbsearch.embedder import Embedder


@dataclass(frozen=True)
class LanguageBindFactory:
    """Picklable: the settings travel to each actor, which opens the embedder there (towers load
    on first use, on the GPU Ray gave the actor when the device is auto)."""

    config: Config
    backend: str | None = None
    device: str | None = None
    dtype: str | None = None

    def __call__(self) -> Embedder:
        from lbsearch.embedder import open_embedder

        return open_embedder(
            self.config, backend=self.backend, device=self.device, dtype=self.dtype
        )
