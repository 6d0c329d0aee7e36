"""Checks of the recorded fixtures: reload the saved files both ways, inputs kept apart."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from .checkpoint import load_config, load_weights
from .record import make_pixels, run_model
from .variants import Variant
from .weights import build_model, lora_scale

LORA_SUFFIXES = (".lora_A.default.weight", ".lora_B.default.weight")


def merge_lora(
    state: OrderedDict[str, torch.Tensor], scale: float
) -> OrderedDict[str, torch.Tensor]:
    """Released LoRA layout -> plain CLIP names: W = W0 + scale * B @ A, wrapper prefix dropped."""
    merged: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, tensor in state.items():
        if key.endswith(LORA_SUFFIXES):
            continue
        stem = key.removesuffix(".weight")
        if f"{stem}.lora_A.default.weight" in state:
            lora_a = state[f"{stem}.lora_A.default.weight"].double()
            lora_b = state[f"{stem}.lora_B.default.weight"].double()
            tensor = (tensor.double() + scale * lora_b @ lora_a).float()
        merged[key.replace(".base_model.model.", ".")] = tensor
    return merged


def to_current_peft(
    state: OrderedDict[str, torch.Tensor], expected_keys: set[str]
) -> OrderedDict[str, torch.Tensor]:
    """Released (old peft) names -> the names peft 0.13 expects (``<proj>.base_layer.*``)."""
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, tensor in state.items():
        stem, _, leaf = key.rpartition(".")
        modern = f"{stem}.base_layer.{leaf}"
        mapped[modern if modern in expected_keys else key] = tensor
    return mapped


def load_checked(model: torch.nn.Module, state: OrderedDict[str, torch.Tensor]) -> None:
    """Strict load; position_ids that the model keeps non-persistent are checked then dropped."""
    wanted = set(model.state_dict())
    for key in [k for k in state if k.endswith("position_ids") and k not in wanted]:
        ids = state.pop(key)
        if not torch.equal(ids, torch.arange(ids.shape[1]).unsqueeze(0)):
            raise RuntimeError(f"unexpected {key}")
    model.load_state_dict(state, strict=True)


def reload_outputs(
    lb: ModuleType, variant: Variant, directory: Path, merged: bool
) -> dict[str, np.ndarray]:
    """Outputs of a fresh reference model loaded from the saved files."""
    config = load_config(lb, variant, directory)
    state = load_weights(directory / variant.weights_file)
    if merged and variant.vision_params()["lora_r"]:
        state = merge_lora(state, lora_scale(variant))
        config.vision_config.lora_r = 0
    model = build_model(lb, variant, config)
    if not merged:
        state = to_current_peft(state, set(model.state_dict()))
    load_checked(model, state)
    expected = np.load(directory / "expected.npz")
    tokens = {key: expected[key] for key in ("input_ids", "attention_mask")}
    return run_model(model, tokens, make_pixels(variant))


def pairwise_cosines(features: np.ndarray) -> list[float]:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sims = unit @ unit.T
    rows, cols = np.triu_indices(len(features), k=1)
    return [round(float(value), 3) for value in sims[rows, cols]]


def check_distinct(arrays: dict[str, np.ndarray]) -> bool:
    """Print pairwise cosines of the recorded features; different inputs must stay apart."""
    ok = True
    for key in ("text_features", "image_features"):
        cosines = pairwise_cosines(arrays[key])
        print(f"  {key} pairwise cosines: max {max(cosines):.3f} {cosines}")
        ok &= max(cosines) < 0.95
    return ok


def check_reload(
    lb: ModuleType, variant: Variant, arrays: dict[str, np.ndarray], root: Path
) -> bool:
    """Reload the saved files both ways (as saved / LoRA merged) and compare the outputs."""
    ok = True
    for merged in (False, True):
        again = reload_outputs(lb, variant, root / variant.name, merged)
        for key, value in again.items():
            err = float(np.max(np.abs(value - arrays[key])) / np.max(np.abs(arrays[key])))
            good = err < 1e-5
            ok &= good
            label = "merged" if merged else "as-saved"
            print(f"  reload {label:8s} {key:15s} max rel err {err:.2e} {'ok' if good else 'FAIL'}")
    return ok
