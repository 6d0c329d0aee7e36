"""The LanguageBind side of search: text through text towers only, example files through their
modality's encoder. Everything loads on first use and stays loaded.

Text is encoded with `load_text_encoder`, which hands back one object for text towers with
identical weights, and vectors are cached by (that object, text): a text searched in five
modalities whose checkpoints share a text tower is encoded once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .config import Config
from .types import MediaSpec, Modality, Segment

if TYPE_CHECKING:
    from .models.encoder import Encoder, TextEncoder


class LanguageBindQueryEncoders:
    """`QueryEncoders` on the LanguageBind checkpoints.

    `models`: the checkpoint of each modality (repo id or directory), normally the ones the
    library was indexed with; modalities not in it use the configured checkpoint.
    """

    def __init__(
        self,
        config: Config,
        models: Mapping[Modality, str] | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        self.config = config
        self.models = dict(models or {})
        self.device = device or config.runtime.device
        self.dtype = dtype or config.runtime.dtype
        self._text: dict[Modality, TextEncoder] = {}
        self._encoders: dict[Modality, Encoder] = {}
        self._vectors: dict[tuple[int, str], np.ndarray] = {}
        self._lock = threading.Lock()
        self.texts_encoded = 0  # texts that went through a tower (the rest came from the cache)

    def model(self, modality: Modality) -> str:
        return self.models.get(modality) or self.config.models.for_modality(modality)

    def text_encoder(self, modality: Modality) -> TextEncoder:
        with self._lock:
            if modality not in self._text:
                from .models.encoder import load_text_encoder

                self._text[modality] = load_text_encoder(
                    self.model(modality),
                    device=self.device,
                    dtype=self.dtype,
                    attention=self.config.runtime.attention,
                )
            return self._text[modality]

    def text_vectors(self, modality: Modality, texts: list[str]) -> np.ndarray:
        tower = self.text_encoder(modality)
        missing = [t for t in dict.fromkeys(texts) if (id(tower), t) not in self._vectors]
        if missing:
            encoded = tower.encode_text(missing).float().cpu().numpy().astype(np.float32)
            self.texts_encoded += len(missing)
            for text, vector in zip(missing, encoded, strict=True):
                self._vectors[(id(tower), text)] = vector
        if not texts:
            return np.zeros((0, tower.dim), dtype=np.float32)
        return np.stack([self._vectors[(id(tower), t)] for t in texts])

    def encoder(self, modality: Modality) -> Encoder:
        with self._lock:
            if modality not in self._encoders:
                from .models.encoder import load_encoder

                self._encoders[modality] = load_encoder(
                    modality,
                    self.model(modality),
                    device=self.device,
                    dtype=self.dtype,
                    attention=self.config.runtime.attention,
                )
            return self._encoders[modality]

    def file_vector(
        self, path: Path, modality: Modality | None = None
    ) -> tuple[Modality, np.ndarray]:
        import torch

        from .media import classify

        kind = classify(Path(path), self.config.classify, forced=modality)
        encoder = self.encoder(kind)
        segments = decode_in_time(Path(path), encoder.spec.media_spec(), self.config)
        batch = max(1, self.config.runtime.batch_size)
        parts = [
            encoder.encode(torch.stack([s.pixels for s in segments[i : i + batch]]))
            for i in range(0, len(segments), batch)
        ]
        mean = torch.cat(parts).float().mean(dim=0).cpu().numpy().astype(np.float64)
        return kind, (mean / (np.linalg.norm(mean) or 1.0)).astype(np.float32)


def decode_in_time(path: Path, spec: MediaSpec, config: Config) -> list[Segment]:
    """`media.decode` in a helper thread, given up after media.decode_timeout_s (0: no limit).

    One example file does not justify a worker process; a decoder stuck past the limit is left
    to finish in its daemon thread while the query fails with a `decode_timeout` MediaError.
    """
    from .media import decode
    from .media.reasons import media_error

    limit = config.media.decode_timeout_s
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["segments"] = decode(path, spec, config)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=work, name="lbsearch-decode", daemon=True)
    thread.start()
    thread.join(limit if limit and limit > 0 else None)
    if thread.is_alive():
        raise media_error(path, "decode_timeout", f"decoding took longer than {limit:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    segments = outcome["segments"]
    assert isinstance(segments, list)
    return segments
