"""A fake encoder that sees the colours and hears the tones of `windows.window_video`, for
moment tests: a picture window's vector points at its colour, a sound window's at its tone.

The concept space has one axis per colour of `COLOURS` and one per tone of `TONES_HZ`, plus a
few axes of seeded noise so that the reference bank's captions (texts that name no colour or
tone) land elsewhere. A text's vector for the picture towers (video, image) is the sum of the
colour axes it names ("red", "blue"...); for the audio tower, of the tones it names ("300hz",
"900 hz"); a text naming none is a seeded random vector, as in `FakeEncoders`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from ..embedder.protocol import Encoding
from ..types import MediaSpec, Modality, Segment
from .fake_encoders import text_vector
from .windows import COLOURS, TONES_HZ

COLOUR_NAMES = ("red", "green", "blue", "yellow", "cyan", "magenta")  # the order of COLOURS
DIM = len(COLOURS) + len(TONES_HZ) + 4
_TONE = re.compile(r"(\d+)\s*hz", re.IGNORECASE)
_NOISE = 0.05  # a little spread, so that no two windows score exactly alike


class WindowEncoders:
    """The `lbsearch.embedder.Embedder` protocol over the colour and tone axes."""

    def __init__(self, image_size: int = 32) -> None:
        self.image_size = image_size

    def model_id(self, modality: Modality) -> str:
        return f"fake/windows-{modality.value}"

    def media_spec(self, modality: Modality) -> MediaSpec:
        return MediaSpec(modality, image_size=self.image_size, num_frames=4, num_mel_bins=112)

    def encoding(self, modality: Modality) -> Encoding:
        return Encoding("fake", "float32")

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        rows = [self._vector(modality, s) for s in segments]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, DIM), np.float32)

    def embed_texts(self, modality: Modality, texts: Sequence[str]) -> np.ndarray:
        rows = [self._text(modality, text) for text in texts]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, DIM), np.float32)

    def _vector(self, modality: Modality, segment: Segment) -> np.ndarray:
        pixels = segment.pixels.numpy()
        if modality is Modality.AUDIO:
            axis = len(COLOURS) + tone_index(pixels, self.media_spec(modality))
        else:
            axis = colour_index(pixels)
        vector = np.zeros(DIM)
        vector[axis] = 1.0
        seed = int(segment.start_s * 1000) + 7 * axis
        vector[-4:] = _NOISE * np.random.default_rng(seed).standard_normal(4)
        return vector / np.linalg.norm(vector)

    def _text(self, modality: Modality, text: str) -> np.ndarray:
        vector = np.zeros(DIM)
        if modality is Modality.AUDIO:
            for hz in _TONE.findall(text):
                vector[len(COLOURS) + _nearest(float(hz), TONES_HZ)] += 1.0
        else:
            for i, name in enumerate(COLOUR_NAMES):
                vector[i] += 1.0 if re.search(rf"\b{name}\b", text, re.IGNORECASE) else 0.0
        if not vector.any():
            return text_vector(self.model_id(modality), text, DIM)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def colour_index(pixels: np.ndarray) -> int:
    """The COLOURS entry of the top half of a picture tensor ((3, S, S) or (3, T, S, S),
    normalised around the channel means): each channel is high (220) or low (40)."""
    top = pixels[..., : pixels.shape[-2] // 4, :]  # clear of the grey bottom half
    high = top.reshape(3, -1).mean(axis=1) > 0
    pattern = [tuple(c > 130 for c in colour) for colour in COLOURS]
    return pattern.index(tuple(bool(h) for h in high))


def tone_index(features: np.ndarray, spec: MediaSpec) -> int:
    """The TONES_HZ entry heard in a (3, M, L) fbank window: its loudest mel bin's centre."""
    energy = features[0].mean(axis=1)
    return _nearest(_bin_hz(int(np.argmax(energy)), spec), TONES_HZ)


def _bin_hz(index: int, spec: MediaSpec) -> float:
    """The centre frequency of mel bin `index` (Kaldi: 20 Hz to Nyquist, mel = 1127 ln(1+f/700))."""
    low, high = _mel(20.0), _mel(spec.sample_rate / 2)
    mel = low + (index + 1) * (high - low) / (spec.num_mel_bins + 1)
    return 700.0 * (math.exp(mel / 1127.0) - 1.0)


def _mel(hz: float) -> float:
    return 1127.0 * math.log(1.0 + hz / 700.0)


def _nearest(value: float, choices: Sequence[float]) -> int:
    return int(np.argmin([abs(value - c) for c in choices]))
