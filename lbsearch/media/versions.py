"""The preprocessing recipe a library's vectors were made with, next to the code it describes."""

from __future__ import annotations

from ..config import Config
from ..types import Modality

# Bump whenever decoding changes what the encoders see for the same file (frame choice, windows,
# resampling, normalisation): libraries then re-embed the modalities concerned.
PREPROCESS_VERSION = "1"
# Per-modality bumps on top of it, so a change to one decoder re-embeds only its modality.
# audio 2: a video's sound-track windows follow its video windows; audio ends at the media's end.
_MODALITY_REVISIONS = {Modality.AUDIO: "2"}


def preprocess_version(modality: Modality, config: Config) -> str:
    """Changes whenever stored vectors would come out differently for the same file and model."""
    version = PREPROCESS_VERSION
    if modality in _MODALITY_REVISIONS:
        version = f"{version}.{_MODALITY_REVISIONS[modality]}"
    video = config.video
    windows = f"window={video.segment_seconds};max={video.max_segments}"
    if modality is Modality.VIDEO:
        return f"{version};{windows}"
    if modality is Modality.AUDIO:  # sound tracks follow the video windows
        return f"{version};hop={config.audio.hop_frames};max={config.audio.max_seconds};{windows}"
    return version
