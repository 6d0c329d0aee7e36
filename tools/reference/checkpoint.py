"""Released checkpoint layout: config.json and weight files as the Hugging Face releases hold them."""

from __future__ import annotations

import json
import tempfile
from collections import OrderedDict
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from .variants import Variant


def config_json(lb: ModuleType, variant: Variant) -> dict[str, Any]:
    """config.json content as the reference config class writes it (from a clean config)."""
    config_class = lb.config_dict[variant.modality]
    true_vision = {**variant.vision_params(), "projection_dim": variant.projection_dim}
    written_vision = true_vision
    if variant.stale_vision is not None:
        written_vision = {**true_vision, **variant.stale_vision}
    config = config_class(
        text_config=variant.text_params(),
        vision_config=written_vision,
        projection_dim=variant.projection_dim,
    )
    config.architectures = ["CLIPModel"]
    with tempfile.TemporaryDirectory() as tmp:
        config.save_pretrained(tmp)
        content: dict[str, Any] = json.loads((Path(tmp) / "config.json").read_text())
    if variant.stale_vision is not None:
        content["vision_config_dict"] = true_vision
    return content


def load_config(lb: ModuleType, variant: Variant, directory: Path) -> Any:
    """Read config.json back through the reference config class (the from_pretrained path)."""
    config = lb.config_dict[variant.modality].from_pretrained(str(directory))
    expected = variant.vision_params()
    for key in ("hidden_size", "num_hidden_layers", "lora_r", "add_time_attn", "num_frames"):
        got = getattr(config.vision_config, key)
        if key in expected and got != expected[key]:
            raise RuntimeError(f"{variant.name}: vision_config.{key} = {got}, want {expected[key]}")
    return config


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def released_state_dict(model: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    """State dict named as in the released files: old peft names, position_ids buffers present."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, tensor in model.state_dict().items():
        out[key.replace(".base_layer.", ".")] = tensor.detach().clone().contiguous()
        if key.endswith("embeddings.position_embedding.weight"):
            ids_key = key.replace("position_embedding.weight", "position_ids")
            out[ids_key] = torch.arange(tensor.shape[0], dtype=torch.int64).unsqueeze(0)
    return out


def save_weights(state: OrderedDict[str, torch.Tensor], path: Path) -> None:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(dict(state), str(path), metadata={"format": "pt"})
    else:
        torch.save(state, path)


def load_weights(path: Path) -> OrderedDict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return OrderedDict(load_file(str(path)))
    return OrderedDict(torch.load(path, map_location="cpu", weights_only=True))
