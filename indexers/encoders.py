"""What the pipeline needs from encoders, and the LanguageBind implementation of it.

The pipeline asks for a modality's model id and input spec before any weights load (planning and
decoding start at once), and loads an encoder only when the first segments need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from lbsearch.config import Config
from lbsearch.media.versions import preprocess_version
from lbsearch.types import MediaSpec, Modality, Segment

if TYPE_CHECKING:
    from lbsearch.models.encoder import Checkpoint, Encoder


class EncoderProvider(Protocol):
    def model_id(self, modality: Modality) -> str: ...

    def media_spec(self, modality: Modality) -> MediaSpec: ...

    def encode(self, modality: Modality, segments: list[Segment]) -> np.ndarray:
        """(len(segments), dim) float32, unit-norm rows."""
        ...


__all__ = ["EncoderProvider", "LanguageBindEncoders", "preprocess_version"]


class LanguageBindEncoders:
    """The configured checkpoints; each encoder loads on first use and stays loaded."""

    def __init__(self, config: Config, device: str | None = None, dtype: str | None = None) -> None:
        self.config = config
        self.device = device or config.runtime.device
        self.dtype = dtype or config.runtime.dtype
        self._checkpoints: dict[Modality, Checkpoint] = {}
        self._encoders: dict[Modality, Encoder] = {}

    def _checkpoint(self, modality: Modality) -> Checkpoint:
        if modality not in self._checkpoints:
            from lbsearch.models.encoder import open_checkpoint

            model = self.config.models.for_modality(modality)
            self._checkpoints[modality] = open_checkpoint(model)
        return self._checkpoints[modality]

    def model_id(self, modality: Modality) -> str:
        model = self.config.models.for_modality(modality)
        from lbsearch.models.hub import is_local_reference

        return str(Path(model).expanduser().resolve()) if is_local_reference(model) else model

    def media_spec(self, modality: Modality) -> MediaSpec:
        return self._checkpoint(modality).spec.media_spec()

    def encode(self, modality: Modality, segments: list[Segment]) -> np.ndarray:
        import torch

        if modality not in self._encoders:
            from lbsearch.models.encoder import Encoder, Placement

            runtime = self.config.runtime
            placement = Placement.resolve(self.device, self.dtype, runtime.attention)
            self._encoders[modality] = Encoder(self._checkpoint(modality), placement, modality)
        encoder = self._encoders[modality]
        pixels = torch.stack([segment.pixels for segment in segments])
        return encoder.encode(pixels).numpy()
