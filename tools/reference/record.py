"""Reference outputs: run a tiny model on fixed inputs and write its fixture folder."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np
import torch

from .checkpoint import (
    config_json,
    load_config,
    released_state_dict,
    save_weights,
    write_json,
)
from .env import package_versions
from .tokenizer import CONTEXT_LENGTH, tokenize
from .variants import FIXTURE_TEXTS, Variant
from .weights import RefModel, build_model, randomise_weights


def make_pixels(variant: Variant) -> np.ndarray:
    """Deterministic modality input; tests regenerate it from the seed and shape in meta.json."""
    rng = np.random.RandomState(variant.seed)
    return rng.standard_normal(variant.pixel_shape).astype(np.float32)


def run_model(
    model: RefModel, tokens: dict[str, np.ndarray], pixels: np.ndarray
) -> dict[str, np.ndarray]:
    with torch.no_grad():
        text = model.get_text_features(
            input_ids=torch.from_numpy(tokens["input_ids"]),
            attention_mask=torch.from_numpy(tokens["attention_mask"]),
        )
        image = model.get_image_features(pixel_values=torch.from_numpy(pixels))
    return {
        "text_features": text.numpy().astype(np.float32),
        "image_features": image.numpy().astype(np.float32),
    }


def meta_json(
    variant: Variant, model: RefModel, tokenizer: Any, config: dict[str, Any]
) -> dict[str, Any]:
    vision = variant.vision_params()
    return {
        "variant": variant.name,
        "modality": variant.modality,
        "model_class": f"languagebind.{type(model).__name__}",
        "tokenizer_class": f"languagebind.{type(tokenizer).__name__}",
        "config_model_type": config["model_type"],
        "weights_file": variant.weights_file,
        "versions": package_versions(),
        "lora_r": vision["lora_r"],
        "lora_alpha": vision["lora_alpha"],
        "logit_scale": float(model.logit_scale.detach()),
        "texts": FIXTURE_TEXTS,
        "tokenizer_call": {
            "max_length": CONTEXT_LENGTH,
            "padding": "max_length",
            "truncation": True,
        },
        "pixels": {
            "generator": "np.random.RandomState(seed).standard_normal(shape).astype(np.float32)",
            "seed": variant.seed,
            "shape": list(variant.pixel_shape),
        },
        "outputs": {
            "text_features": "model.get_text_features(input_ids, attention_mask), unnormalised",
            "image_features": "model.get_image_features(pixel_values), unnormalised",
        },
        "dtype": "float32",
    }


def record_variant(
    lb: ModuleType, variant: Variant, tokenizer: Any, out_root: Path
) -> dict[str, np.ndarray]:
    """Build, save and run one variant; returns the arrays written to expected.npz."""
    directory = out_root / variant.name
    directory.mkdir(parents=True, exist_ok=True)
    content = config_json(lb, variant)
    write_json(directory / "config.json", content)
    tokens = tokenize(tokenizer, FIXTURE_TEXTS)
    model = build_model(lb, variant, load_config(lb, variant, directory))
    randomise_weights(model, variant, set(np.unique(tokens["input_ids"]).tolist()))
    save_weights(released_state_dict(model), directory / variant.weights_file)
    arrays = {**tokens, **run_model(model, tokens, make_pixels(variant))}
    np.savez_compressed(directory / "expected.npz", **cast(dict[str, Any], arrays))
    write_json(directory / "meta.json", meta_json(variant, model, tokenizer, content))
    return arrays
