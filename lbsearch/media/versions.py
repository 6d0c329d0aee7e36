"""The preprocessing recipe a library's vectors were made with, next to the code it describes."""

from __future__ import annotations

from ..config import Config
from ..types import Modality

# Bump whenever decoding changes what the encoders see for the same file (frame choice, windows,
# resampling, normalisation): libraries then re-embed the modalities concerned.
PREPROCESS_VERSION = "1"


def preprocess_version(modality: Modality, config: Config) -> str:
    """Changes whenever stored vectors would come out differently for the same file and model."""
    if modality is Modality.VIDEO:
        video = config.video
        return f"{PREPROCESS_VERSION};window={video.segment_seconds};max={video.max_segments}"
    if modality is Modality.AUDIO:
        return f"{PREPROCESS_VERSION};hop={config.audio.hop_frames};max={config.audio.max_seconds}"
    return PREPROCESS_VERSION
