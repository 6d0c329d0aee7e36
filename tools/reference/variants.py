"""The tiny reference checkpoints recorded as fixtures, and the texts they embed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .tokenizer import CONTEXT_LENGTH, VOCAB_SIZE

AUDIO_MEAN = -4.2677393
AUDIO_STD = 4.5689974


FIXTURE_TEXTS = [
    "a dog barking",
    "A Photo of THE Eiffel Tower, at Night!! It's 9:30pm... isn't it?",
    "Café naïve crème brûlée — 東京タワーの夜景 🐕🎉 Ünïcödé",
    "a very long description of a busy city street at dusk where many people walk past "
    "brightly lit shop windows while cars, buses, bicycles and scooters wait at the crossing, "
    "street musicians play guitar and violin near the fountain, pigeons gather around a bench, "
    "and the smell of roasted chestnuts drifts from a small stall on the corner of the square, "
    "while high above the rooftops a flock of starlings turns and wheels against an orange sky "
    "that slowly fades into the deep blue of an early winter night",
    "",
    "   lots   of\t\textra \n\n whitespace   around   ",
]

TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": CONTEXT_LENGTH,
    "vocab_size": VOCAB_SIZE,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    # legacy ids carried by the released text_config (pooling falls back to argmax(input_ids))
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 56,
    "patch_size": 14,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "force_patch_dropout": 0.0,
    "lora_r": 0,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
}

VIDEO = {"add_time_attn": True, "num_frames": 8, "video_decode_backend": "decord"}
VIDEO_SHAPE = (2, 3, 8, 56, 56)
AUDIO = {"audio_sample_rate": 16000, "audio_mean": AUDIO_MEAN, "audio_std": AUDIO_STD}


@dataclass(frozen=True)
class Variant:
    """One tiny reference checkpoint: modality, config overrides, file format, input shape."""

    name: str
    modality: str
    seed: int
    pixel_shape: tuple[int, ...]
    vision: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    projection_dim: int = 16
    weights_file: str = "pytorch_model.bin"
    # When set, the true vision params go to ``vision_config_dict`` and ``vision_config`` gets
    # TINY_VISION updated with these stale, conflicting values (legacy layout of the Huge config).
    stale_vision: dict[str, Any] | None = None

    def vision_params(self) -> dict[str, Any]:
        return {**TINY_VISION, **self.vision}

    def text_params(self) -> dict[str, Any]:
        return {**TINY_TEXT, **self.text, "projection_dim": self.projection_dim}


VARIANTS: list[Variant] = [
    Variant("image", "image", 101, (3, 3, 56, 56), weights_file="model.safetensors"),
    Variant("video_lora", "video", 102, VIDEO_SHAPE, {**VIDEO, "lora_r": 4}),
    Variant("video_ft", "video", 103, VIDEO_SHAPE, VIDEO),
    Variant("video_v15_ft", "video", 104, VIDEO_SHAPE, {**VIDEO, "clip_type": "vl_new"}),
    Variant(
        "video_huge_v15_ft",
        "video",
        105,
        VIDEO_SHAPE,
        {
            **VIDEO,
            "clip_type": "vl_new",
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_mel_bins": 0,
            "target_length": 0,
        },
        text={"hidden_size": 24, "intermediate_size": 48, "num_attention_heads": 4},
        projection_dim=20,
        stale_vision={
            "clip_type": "vl",
            "hidden_size": 40,
            "intermediate_size": 80,
            "num_hidden_layers": 1,
            "lora_r": 16,
            "num_frames": 1,
            "add_time_attn": False,
            "hidden_act": "quick_gelu",
        },
    ),
    Variant(
        "audio_lora",
        "audio",
        106,
        (2, 3, 126, 1036),
        {**AUDIO, "lora_r": 2, "num_mel_bins": 126, "target_length": 1036},
    ),
    Variant(
        "audio_ft",
        "audio",
        107,
        (2, 3, 112, 1036),
        {**AUDIO, "num_mel_bins": 112, "target_length": 1036},
    ),
    Variant(
        "depth",
        "depth",
        108,
        (3, 3, 56, 56),
        {"lora_r": 2, "max_depth": 10},
        weights_file="model.safetensors",
    ),
    Variant("thermal", "thermal", 109, (3, 3, 56, 56), {"lora_r": 2}),
]
