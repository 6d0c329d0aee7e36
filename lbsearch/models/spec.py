"""What a LanguageBind checkpoint's config.json says, as typed values.

AutoConfig does not know model_type `LanguageBind<Modality>`, so the file is read here. Precedence
for each tower follows the reference: class defaults <- `vision_config` <- `vision_config_dict`
(the legacy *_dict, when present, is expanded over the defaults and wins wholesale).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..types import MediaSpec, Modality

MODEL_TYPES = {f"LanguageBind{m.value.capitalize()}": m for m in Modality}
SUPPORTED_ACTIVATIONS = ("gelu", "quick_gelu", "gelu_new", "gelu_pytorch_tanh")

# transformers' CLIP defaults (what a key missing from config.json means), plus LanguageBind's extras.
_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
_VISION_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "add_time_attn": False,
    "num_frames": 1,
    "clip_type": "vl",
    "tube_size": 1,
    "lora_r": 2,
    "lora_alpha": 16,
    "num_mel_bins": 0,
    "target_length": 0,
    "audio_sample_rate": 16000,
    "audio_mean": -4.2677393,
    "audio_std": 4.5689974,
    "max_depth": 10.0,
}


@dataclass(frozen=True)
class TowerShape:
    """The transformer stack shared by the text and vision towers."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    hidden_act: str
    layer_norm_eps: float


@dataclass(frozen=True)
class TextSpec:
    shape: TowerShape
    vocab_size: int
    max_positions: int


@dataclass(frozen=True)
class VisionSpec:
    shape: TowerShape
    num_channels: int
    patch_size: int
    input_hw: tuple[int, int]  # (H, W) of one frame: image_size x image_size, or mel bins x frames
    num_frames: int  # frames per clip the temporal layers expect; 1 for still inputs
    temporal: bool  # per-layer temporal embedding + attention (video)
    per_frame_cls: bool  # LanguageBind v1.5 video: one CLS embedding per frame, Conv3d patches
    lora_r: int
    lora_alpha: float
    audio_sample_rate: int
    audio_mean: float
    audio_std: float
    max_depth: float

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_hw[0] // self.patch_size, self.input_hw[1] // self.patch_size

    @property
    def num_positions(self) -> int:
        rows, cols = self.grid
        return rows * cols + 1


@dataclass(frozen=True)
class CheckpointSpec:
    modality: Modality
    model_type: str
    projection_dim: int
    text: TextSpec
    vision: VisionSpec

    def media_spec(self) -> MediaSpec:
        v = self.vision
        return MediaSpec(
            modality=self.modality,
            image_size=v.input_hw[0] if self.modality is not Modality.AUDIO else 224,
            num_frames=v.num_frames,
            num_mel_bins=v.input_hw[0] if self.modality is Modality.AUDIO else 0,
            target_length=v.input_hw[1] if self.modality is Modality.AUDIO else 0,
            sample_rate=v.audio_sample_rate,
            audio_mean=v.audio_mean,
            audio_std=v.audio_std,
            max_depth=v.max_depth,
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one item for Encoder.encode (without the batch axis)."""
        h, w = self.vision.input_hw
        if self.modality is Modality.VIDEO:
            return (self.vision.num_channels, self.vision.num_frames, h, w)
        return (self.vision.num_channels, h, w)


def read_spec(config_path: Path) -> CheckpointSpec:
    """Parse a LanguageBind config.json; any problem names the file and the key."""
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{config_path}: cannot read config.json: {exc}",
            "re-download the checkpoint (`lbsearch pull MODEL`) or fix the file",
        ) from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{config_path}: config.json is not a JSON object", "re-download it")
    model_type = raw.get("model_type")
    if model_type not in MODEL_TYPES:
        known = ", ".join(sorted(MODEL_TYPES))
        raise CheckpointError(
            f"{config_path}: key 'model_type' is {model_type!r}, not a LanguageBind model",
            f"lbsearch loads LanguageBind checkpoints ({known})",
        )
    modality = MODEL_TYPES[model_type]
    reader = _Reader(config_path)
    text = _text_spec(reader, reader.tower(raw, "text_config", _TEXT_DEFAULTS))
    vision_raw = reader.tower(raw, "vision_config", _VISION_DEFAULTS)
    vision = _vision_spec(reader, vision_raw, modality)
    projection_dim = reader.positive(raw, "projection_dim", 512)
    return CheckpointSpec(modality, model_type, projection_dim, text, vision)


class _Reader:
    """Typed field access that reports the file and key of every bad value."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> CheckpointError:
        return CheckpointError(
            f"{self.path}: key {key!r} {problem}",
            "the checkpoint's config.json is damaged or not a released LanguageBind config",
        )

    def tower(self, raw: dict[str, Any], key: str, defaults: dict[str, Any]) -> dict[str, Any]:
        merged = dict(defaults)
        for source_key in (key, f"{key}_dict"):
            section = raw.get(source_key)
            if section is None:
                continue
            if not isinstance(section, dict):
                raise self.fail(source_key, "must be an object")
            if source_key.endswith("_dict"):
                merged = dict(defaults)  # the legacy dict is expanded over class defaults
            merged.update(section)
        return merged

    def positive(self, raw: dict[str, Any], key: str, default: int | None = None) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(key, f"must be a positive integer, got {value!r}")
        return value

    def number(self, raw: dict[str, Any], key: str) -> float:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {value!r}")
        return float(value)

    def shape(self, raw: dict[str, Any], prefix: str) -> TowerShape:
        act = raw.get("hidden_act")
        if act not in SUPPORTED_ACTIVATIONS:
            raise self.fail(
                f"{prefix}.hidden_act", f"is {act!r}; supported: {SUPPORTED_ACTIVATIONS}"
            )
        hidden = self.positive(raw, "hidden_size")
        heads = self.positive(raw, "num_attention_heads")
        if hidden % heads:
            raise self.fail(f"{prefix}.num_attention_heads", f"{heads} does not divide {hidden}")
        return TowerShape(
            hidden_size=hidden,
            intermediate_size=self.positive(raw, "intermediate_size"),
            num_layers=self.positive(raw, "num_hidden_layers"),
            num_heads=heads,
            hidden_act=act,
            layer_norm_eps=self.number(raw, "layer_norm_eps"),
        )


def _text_spec(reader: _Reader, raw: dict[str, Any]) -> TextSpec:
    vocab = reader.positive(raw, "vocab_size")
    if vocab < 49408:
        raise reader.fail("text_config.vocab_size", f"is {vocab}; CLIP's BPE needs 49408")
    return TextSpec(
        shape=reader.shape(raw, "text_config"),
        vocab_size=vocab,
        max_positions=reader.positive(raw, "max_position_embeddings"),
    )


def _vision_spec(reader: _Reader, raw: dict[str, Any], modality: Modality) -> VisionSpec:
    patch = reader.positive(raw, "patch_size")
    clip_type = raw.get("clip_type", "vl")
    temporal = bool(raw.get("add_time_attn"))
    if modality is Modality.VIDEO and not temporal:
        raise reader.fail("vision_config.add_time_attn", "must be true for a video checkpoint")
    num_frames = reader.positive(raw, "num_frames") if modality is Modality.VIDEO else 1
    if reader.positive(raw, "tube_size") != 1:
        raise reader.fail("vision_config.tube_size", "other than 1 is not a released variant")
    return VisionSpec(
        shape=reader.shape(raw, "vision_config"),
        num_channels=reader.positive(raw, "num_channels"),
        patch_size=patch,
        input_hw=_input_hw(reader, raw, modality, patch),
        num_frames=num_frames,
        temporal=modality is Modality.VIDEO,
        per_frame_cls=modality is Modality.VIDEO and clip_type == "vl_new",
        lora_r=int(reader.number(raw, "lora_r")),
        lora_alpha=reader.number(raw, "lora_alpha"),
        audio_sample_rate=reader.positive(raw, "audio_sample_rate"),
        audio_mean=reader.number(raw, "audio_mean"),
        audio_std=reader.number(raw, "audio_std"),
        max_depth=reader.number(raw, "max_depth"),
    )


def _input_hw(
    reader: _Reader, raw: dict[str, Any], modality: Modality, patch: int
) -> tuple[int, int]:
    if modality is Modality.AUDIO:
        hw = (reader.positive(raw, "num_mel_bins"), reader.positive(raw, "target_length"))
    else:
        size = raw.get("image_size")
        # Configs saved after the reference built a model carry image_size as a [H, W] list.
        if isinstance(size, list) and len(size) == 2 and size[0] == size[1]:
            size = size[0]
        hw = (reader.positive({"image_size": size}, "image_size"),) * 2
    if hw[0] < patch or hw[1] < patch:
        raise reader.fail("vision_config.patch_size", f"{patch} is larger than the input {hw}")
    return hw
