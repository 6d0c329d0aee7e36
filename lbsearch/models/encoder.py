"""The public way to get embeddings: `load_encoder` for a modality, `load_text_encoder` for text.

Both return L2-normalised float32 vectors. A text query loads only text weights; text towers with
identical weights (LanguageBind froze the text tower in training) are loaded once and shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, UsageError
from ..types import Modality
from .checkpoint import Checkpoint, open_checkpoint
from .runtime import resolve_attention, resolve_device, resolve_dtype
from .tokenizer import ClipTokenizer
from .towers import TextModel, VisionModel, set_attention
from .weights import TEXT_PREFIXES, VISION_PREFIXES, check_keys, fingerprint, read_tensors
from .weights import vision_state as _vision_state


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype
    attention: str

    @classmethod
    def resolve(cls, device: str, dtype: str, attention: str = "auto") -> Placement:
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        return cls(dev, dt, resolve_attention(attention, dev, dt))


class TextEncoder:
    """A checkpoint's text tower with its tokenizer.

    Towers with identical weights are shared, so `model_id` names the first checkpoint that
    loaded these weights, which may not be the one a caller asked for."""

    def __init__(self, checkpoint: Checkpoint, placement: Placement, batch_size: int = 64) -> None:
        spec = checkpoint.spec
        raw = read_tensors(checkpoint.weights, TEXT_PREFIXES)
        self.fingerprint = fingerprint(raw.items())
        self.model = _build(
            lambda: TextModel(spec.text, spec.projection_dim), raw, checkpoint, placement
        )
        self.tokenizer = ClipTokenizer(checkpoint.directory, spec.text.max_positions)
        self.model_id = checkpoint.model_id
        self.dim = spec.projection_dim
        self.placement = placement
        self.batch_size = batch_size

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            raise UsageError("encode_text takes a list of texts, not one string", "wrap it: [text]")
        chunks = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        outputs = [self._encode_chunk(chunk) for chunk in chunks]
        return torch.cat(outputs) if outputs else torch.empty(0, self.dim)

    @torch.inference_mode()
    def _encode_chunk(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts)
        device = self.placement.device
        ids = torch.from_numpy(batch.input_ids).to(device)
        features = self.model(ids, torch.from_numpy(batch.eos_positions).to(device))
        return _normalise(features)


class Encoder:
    """A modality tower; `encode_text` uses the text tower of the same checkpoint (loaded lazily)."""

    def __init__(self, checkpoint: Checkpoint, placement: Placement, modality: Modality) -> None:
        spec = checkpoint.spec
        if spec.modality is not modality:
            raise CheckpointError(
                f"{checkpoint.directory / 'config.json'}: key 'model_type' is {spec.model_type}, "
                f"a {spec.modality.value} checkpoint, not {modality.value}",
                f"use a LanguageBind {modality.value} checkpoint for {modality.value} files",
            )
        raw = read_tensors(checkpoint.weights, VISION_PREFIXES)
        state = _vision_state(raw, spec.vision, checkpoint.weights)
        factory = lambda: VisionModel(spec.vision, spec.projection_dim)  # noqa: E731
        self.model = _build(factory, state, checkpoint, placement)
        self.checkpoint = checkpoint
        self.placement = placement
        self.modality = modality
        self.model_id = checkpoint.model_id
        self.dim = spec.projection_dim
        self.spec = spec
        self._text: TextEncoder | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.spec.input_shape

    @torch.inference_mode()
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if tuple(pixel_values.shape[1:]) != self.input_shape or pixel_values.dim() < 2:
            raise UsageError(
                f"{self.model_id}: {self.modality.value} input has shape {tuple(pixel_values.shape)}",
                f"expected (batch, {', '.join(map(str, self.input_shape))})",
            )
        pixels = pixel_values.to(self.placement.device, self.placement.dtype)
        return _normalise(self.model(pixels))

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text is None:
            self._text = _shared_text_encoder(self.checkpoint, self.placement)
        return self._text

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return self.text_encoder.encode_text(texts)


def load_encoder(
    modality: Modality | str,
    model: str | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    attention: str = "auto",
) -> Encoder:
    """The encoder for `modality` from `model` (repo id or directory; default from config.toml)."""
    mod = Modality.parse(str(modality))
    checkpoint = open_checkpoint(model or _default_model(mod))
    return Encoder(checkpoint, Placement.resolve(device, dtype, attention), mod)


def load_text_encoder(
    model: str, *, device: str = "auto", dtype: str = "auto", attention: str = "auto"
) -> TextEncoder:
    """Only the text tower of `model`; towers with identical weights come back as one object."""
    return _shared_text_encoder(open_checkpoint(model), Placement.resolve(device, dtype, attention))


_text_lock = threading.Lock()
_text_by_checkpoint: dict[tuple[Path, Placement], TextEncoder] = {}
_text_by_fingerprint: dict[tuple[str, Placement], TextEncoder] = {}


def _shared_text_encoder(checkpoint: Checkpoint, placement: Placement) -> TextEncoder:
    with _text_lock:
        key = (checkpoint.directory, placement)
        if key in _text_by_checkpoint:
            return _text_by_checkpoint[key]
        encoder = TextEncoder(checkpoint, placement)
        shared = _text_by_fingerprint.setdefault((encoder.fingerprint, placement), encoder)
        _text_by_checkpoint[key] = shared
        return shared


def _default_model(modality: Modality) -> str:
    from ..config import load_config

    return load_config().models.for_modality(modality)


def _build(
    factory: Callable[[], nn.Module],
    state: dict[str, torch.Tensor],
    checkpoint: Checkpoint,
    placement: Placement,
) -> nn.Module:
    with torch.device("meta"):  # no random init, no second copy of the weights
        module = factory()
    check_keys(state, module.state_dict(), checkpoint.weights)
    module.load_state_dict(state, strict=True, assign=True)
    set_attention(module, "eager" if placement.attention == "eager" else "sdpa")
    return module.to(placement.device, placement.dtype).eval().requires_grad_(False)


def _normalise(features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(features.float(), dim=-1)
