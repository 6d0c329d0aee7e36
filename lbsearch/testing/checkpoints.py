"""Tiny random-weight LanguageBind checkpoints in the exact released layout.

Every released variant is covered. Key names are written out here from the published layout
(not derived from lbsearch's own modules), so loading them tests the real key mapping: LoRA
variants carry unmerged old-peft factors with a non-zero B, v1.5 video a per-frame CLS and a Conv3d
kernel, every file the `position_ids` buffers the released pickles hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..types import Modality
from .tokenizer_files import VOCAB_SIZE, write_tokenizer_files


@dataclass(frozen=True)
class TinyDims:
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_mlp: int = 64
    text_hidden: int = 32
    text_layers: int = 2
    text_mlp: int = 64
    heads: int = 4
    projection: int = 16
    image_size: int = 56
    patch: int = 14
    num_frames: int = 8


HUGE_DIMS = TinyDims(
    vision_hidden=48, vision_layers=3, vision_mlp=96, text_hidden=24, projection=20
)
VIT_L = TinyDims(1024, 24, 4096, 768, 12, 3072, 16, 768, 224, 14, 8)  # text heads: see _text_heads


@dataclass(frozen=True)
class Variant:
    """One released checkpoint kind: its modality and the config fields that set it apart."""

    name: str
    modality: Modality
    repo: str
    lora_r: int = 0
    lora_alpha: float = 16.0
    clip_type: str = "vl"
    num_mel_bins: int = 0
    legacy_vision_dict: bool = False


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("image", Modality.IMAGE, "LanguageBind/LanguageBind_Image"),
        Variant("video_lora", Modality.VIDEO, "LanguageBind/LanguageBind_Video", lora_r=4),
        Variant("video_ft", Modality.VIDEO, "LanguageBind/LanguageBind_Video_FT"),
        Variant(
            "video_v15_ft",
            Modality.VIDEO,
            "LanguageBind/LanguageBind_Video_V1.5_FT",
            clip_type="vl_new",
        ),
        Variant(
            "video_huge_v15_ft",
            Modality.VIDEO,
            "LanguageBind/LanguageBind_Video_Huge_V1.5_FT",
            clip_type="vl_new",
            legacy_vision_dict=True,
        ),
        Variant(
            "audio_lora",
            Modality.AUDIO,
            "LanguageBind/LanguageBind_Audio",
            lora_r=2,
            num_mel_bins=126,
        ),
        Variant("audio_ft", Modality.AUDIO, "LanguageBind/LanguageBind_Audio_FT", num_mel_bins=112),
        Variant("depth", Modality.DEPTH, "LanguageBind/LanguageBind_Depth", lora_r=2),
        Variant("thermal", Modality.THERMAL, "LanguageBind/LanguageBind_Thermal", lora_r=2),
    )
}
AUDIO_TARGET_LENGTH = 1036


def write_tiny_checkpoint(
    directory: Path,
    variant: str | Variant,
    *,
    seed: int = 0,
    text_seed: int = 1234,
    dims: TinyDims | None = None,
    weights_format: str = "bin",
) -> Path:
    """Write config.json, weights and tokenizer files of a random `variant` model to `directory`.

    Text weights depend only on `text_seed` and the text dims, so checkpoints written with the
    same ones share a text tower bit for bit, as the released checkpoints do.
    """
    var = VARIANTS[variant] if isinstance(variant, str) else variant
    dims = dims or (HUGE_DIMS if var.legacy_vision_dict else TinyDims())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config_dict(var, dims), indent=2), "utf-8")
    state = {**_text_state(dims, text_seed), **_vision_state(var, dims, seed)}
    state["logit_scale"] = torch.tensor(2.6592)
    if weights_format == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, directory / "pytorch_model.bin")
    tokenizer_class = f"LanguageBind{var.modality.value.capitalize()}Tokenizer"
    write_tokenizer_files(directory, tokenizer_class)
    return directory


def config_dict(var: Variant, dims: TinyDims) -> dict:
    vision = _vision_config(var, dims)
    config = {
        "architectures": ["CLIPModel"],
        "model_type": f"LanguageBind{var.modality.value.capitalize()}",
        "projection_dim": dims.projection,
        "logit_scale_init_value": 2.6592,
        "initializer_factor": 1.0,
        "torch_dtype": "float32",
        "transformers_version": "4.30.2",
        "text_config": _text_config(dims),
        "vision_config": vision,
    }
    if var.legacy_vision_dict:
        # The Huge release carries its real values in vision_config_dict; vision_config is stale.
        stale = replace(dims, vision_hidden=dims.vision_hidden * 2, vision_layers=1)
        config["vision_config"] = {**_vision_config(var, stale), "clip_type": "vl", "lora_r": 8}
        config["vision_config_dict"] = vision
    return config


def _text_config(dims: TinyDims) -> dict:
    return {
        "model_type": "clip_text_model",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": dims.text_hidden,
        "intermediate_size": dims.text_mlp,
        "num_hidden_layers": dims.text_layers,
        "num_attention_heads": _text_heads(dims),
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": dims.projection,
        "bos_token_id": 0,  # legacy values as in the released files
        "eos_token_id": 2,
        "pad_token_id": 1,
    }


def _text_heads(dims: TinyDims) -> int:
    return 12 if dims.text_hidden == 768 else dims.heads


def _vision_config(var: Variant, dims: TinyDims) -> dict:
    config = {
        "model_type": "clip_vision_model",
        "hidden_size": dims.vision_hidden,
        "intermediate_size": dims.vision_mlp,
        "num_hidden_layers": dims.vision_layers,
        "num_attention_heads": dims.heads,
        "num_channels": 3,
        "image_size": dims.image_size,
        "patch_size": dims.patch,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": dims.projection,
        "add_time_attn": var.modality is Modality.VIDEO,
        "num_frames": dims.num_frames if var.modality is Modality.VIDEO else 1,
        "force_patch_dropout": 0.0,
        "lora_r": var.lora_r,
        "lora_alpha": var.lora_alpha,
        "lora_dropout": 0.0,
        "num_mel_bins": var.num_mel_bins,
        "target_length": AUDIO_TARGET_LENGTH if var.num_mel_bins else 0,
        "video_decode_backend": "decord",
    }
    if var.clip_type != "vl":
        config["clip_type"] = var.clip_type
    if var.modality is Modality.AUDIO:
        config.update(audio_sample_rate=16000, audio_mean=-4.2677393, audio_std=4.5689974)
    if var.modality is Modality.DEPTH:
        config["max_depth"] = 10
    return config


class _Draw:
    """Random tensors with gains large enough that tiny models tell inputs apart."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def normal(self, *shape: int, std: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator) * std

    def linear(self, state: dict, key: str, out_dim: int, in_dim: int, bias: bool = True) -> None:
        state[f"{key}.weight"] = self.normal(out_dim, in_dim, std=1.5 / in_dim**0.5)
        if bias:
            state[f"{key}.bias"] = self.normal(out_dim, std=0.1)

    def norm(self, state: dict, key: str, dim: int) -> None:
        state[f"{key}.weight"] = 1.0 + self.normal(dim, std=0.2)
        state[f"{key}.bias"] = self.normal(dim, std=0.1)


def _layer(
    draw: _Draw, state: dict, prefix: str, dim: int, mlp: int, attn: str = "self_attn"
) -> None:
    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        draw.linear(state, f"{prefix}.{attn}.{proj}", dim, dim)
    if attn != "self_attn":
        return
    draw.norm(state, f"{prefix}.layer_norm1", dim)
    draw.norm(state, f"{prefix}.layer_norm2", dim)
    draw.linear(state, f"{prefix}.mlp.fc1", mlp, dim)
    draw.linear(state, f"{prefix}.mlp.fc2", dim, mlp)


def _text_state(dims: TinyDims, seed: int) -> dict[str, torch.Tensor]:
    draw, dim, state = _Draw(seed), dims.text_hidden, {}
    state["text_model.embeddings.token_embedding.weight"] = draw.normal(VOCAB_SIZE, dim)
    state["text_model.embeddings.position_embedding.weight"] = draw.normal(77, dim, std=0.5)
    state["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    for i in range(dims.text_layers):
        _layer(draw, state, f"text_model.encoder.layers.{i}", dim, dims.text_mlp)
    draw.norm(state, "text_model.final_layer_norm", dim)
    draw.linear(state, "text_projection", dims.projection, dim, bias=False)
    return state


def _vision_state(var: Variant, dims: TinyDims, seed: int) -> dict[str, torch.Tensor]:
    draw, dim, state = _Draw(seed + 1), dims.vision_hidden, {}
    rows = (var.num_mel_bins or dims.image_size) // dims.patch
    cols = (AUDIO_TARGET_LENGTH if var.num_mel_bins else dims.image_size) // dims.patch
    per_frame = var.clip_type == "vl_new"
    emb = "vision_model.embeddings"
    state[f"{emb}.class_embedding"] = draw.normal(
        *((dims.num_frames, dim) if per_frame else (dim,))
    )
    kernel = (dim, 3, 1, dims.patch, dims.patch) if per_frame else (dim, 3, dims.patch, dims.patch)
    state[f"{emb}.patch_embedding.weight"] = draw.normal(
        *kernel, std=1.5 / (3 * dims.patch**2) ** 0.5
    )
    state[f"{emb}.position_embedding.weight"] = draw.normal(rows * cols + 1, dim, std=0.5)
    state[f"{emb}.position_ids"] = torch.arange(rows * cols + 1).unsqueeze(0)
    draw.norm(state, "vision_model.pre_layrnorm", dim)
    for i in range(dims.vision_layers):
        _vision_layer(draw, state, var, dims, i)
    draw.norm(state, "vision_model.post_layernorm", dim)
    draw.linear(state, "visual_projection", dims.projection, dim, bias=False)
    return state


def _vision_layer(draw: _Draw, state: dict, var: Variant, dims: TinyDims, index: int) -> None:
    wrapped = "vision_model.encoder.base_model.model" if var.lora_r else "vision_model.encoder"
    prefix, dim = f"{wrapped}.layers.{index}", dims.vision_hidden
    _layer(draw, state, prefix, dim, dims.vision_mlp)
    if var.modality is Modality.VIDEO:
        state[f"{prefix}.temporal_embedding"] = draw.normal(1, dims.num_frames, dim, std=0.5)
        draw.norm(state, f"{prefix}.temporal_layer_norm1", dim)
        _layer(draw, state, prefix, dim, dims.vision_mlp, attn="temporal_attn")
    if var.lora_r:
        attn = "temporal_attn" if var.modality is Modality.VIDEO else "self_attn"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            key = f"{prefix}.{attn}.{proj}"
            # alpha/r * B @ A comparable to, not larger than, the frozen weight
            scale = (var.lora_alpha / var.lora_r) * var.lora_r**0.5
            state[f"{key}.lora_A.default.weight"] = draw.normal(var.lora_r, dim, std=dim**-0.5)
            state[f"{key}.lora_B.default.weight"] = draw.normal(dim, var.lora_r, std=0.5 / scale)


# The tiny variant that stands in for each modality's default checkpoint.
TINY_FOR_MODALITY = {
    "image": "image",
    "video": "video_ft",
    "audio": "audio_ft",
    "depth": "depth",
    "thermal": "thermal",
}


def write_tiny_config(path: Path, models: Path, *, runtime: dict[str, str] | None = None) -> Path:
    """Write `path`, a config.toml whose [models] point every modality at a tiny checkpoint in
    `models/<variant>` (written there first where missing) and with the given [runtime] keys.

    Tiny checkpoints have random weights: what they find means nothing, but every code path
    (loading, preprocessing, encoding, indexing, search) runs as with the released models.
    """
    lines = ["[models]"]
    for modality, variant in TINY_FOR_MODALITY.items():
        target = models / variant
        if not (target / "config.json").exists():
            write_tiny_checkpoint(target, variant)
        lines.append(f"{modality} = {json.dumps(str(target.resolve()))}")
    if runtime:
        lines += ["[runtime]", *(f"{key} = {json.dumps(value)}" for key, value in runtime.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
