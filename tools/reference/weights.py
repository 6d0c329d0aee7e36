"""Tiny models with input-sensitive random weights."""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from .variants import Variant

# A languagebind LanguageBind<Modality> model (a transformers PreTrainedModel); the package is untyped.
RefModel = Any


def build_model(lb: ModuleType, variant: Variant, config: Any) -> RefModel:
    """Construct the reference model from a private copy of ``config`` (construction mutates it)."""
    torch.manual_seed(variant.seed)
    model = lb.model_dict[variant.modality](copy.deepcopy(config))
    return model.eval()


def lora_scale(variant: Variant) -> float:
    params = variant.vision_params()
    return float(params["lora_alpha"]) / float(params["lora_r"])


# (name test, mean, std) for parameters not drawn as fan-in scaled matrices; first match wins.
FIXED_DRAWS: list[tuple[Callable[[str], bool], float, float]] = [
    (lambda n: "norm" in n and n.endswith(".weight"), 1.0, 0.1),
    (lambda n: n.endswith(".bias"), 0.0, 0.1),
    (lambda n: n.endswith(("token_embedding.weight", "class_embedding")), 0.0, 1.0),
    (lambda n: n.endswith("position_embedding.weight"), 0.0, 0.5),
    (lambda n: n.endswith("temporal_embedding"), 0.0, 0.2),
    (lambda n: n == "logit_scale", 4.0, 0.5),
]


def matrix_gain(name: str) -> float:
    """Gain on 1/sqrt(fan_in): sharp attention, strong values, mild MLP and frame mixing."""
    if "q_proj" in name or "k_proj" in name:
        return 3.0
    if "fc1" in name or "fc2" in name or "temporal_attn" in name:
        return 1.0
    return 2.5


def init_std(name: str, shape: torch.Size, variant: Variant) -> tuple[float, float]:
    """(mean, std) for one parameter; gains chosen so that tiny models stay input-sensitive.

    Default init makes tiny models nearly input-independent. Frame mixing (temporal attention)
    and MLPs are kept mild because they push every frame/token towards a shared constant.
    """
    fan_in = int(torch.Size(shape[1:]).numel()) if len(shape) > 1 else 1
    if "lora_A" in name:
        return 0.0, fan_in**-0.5
    if "lora_B" in name:  # scale * B @ A then has the size of a 0.7-gain matrix
        return 0.0, 0.7 / (lora_scale(variant) * shape[1] ** 0.5)
    for matches, mean, std in FIXED_DRAWS:
        if matches(name):
            return mean, std
    return 0.0, matrix_gain(name) * fan_in**-0.5


def randomise_weights(model: torch.nn.Module, variant: Variant, keep_token_ids: set[int]) -> None:
    """Overwrite every parameter with bf16-representable draws; unused token rows become 0."""
    generator = torch.Generator().manual_seed(variant.seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            mean, std = init_std(name, param.shape, variant)
            values = torch.randn(param.shape, generator=generator) * std + mean
            if name.endswith("token_embedding.weight"):
                keep = torch.zeros(param.shape[0], dtype=torch.bool)
                keep[sorted(keep_token_ids)] = True
                values[~keep] = 0.0
            param.copy_(values.to(torch.bfloat16).to(torch.float32))
