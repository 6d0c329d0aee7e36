"""Read a checkpoint's tensors and turn them into the state dict of one tower.

LoRA checkpoints keep the frozen weights and the low-rank factors apart, under the old peft names
(`vision_model.encoder.base_model.model.layers.0.self_attn.q_proj.{weight,lora_A.default.weight,
lora_B.default.weight}`); they are merged here, W = W0 + alpha/r * B @ A, so inference runs plain
layers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import CheckpointError
from .spec import VisionSpec

VISION_PREFIXES = ("vision_model.", "visual_projection.")
TEXT_PREFIXES = ("text_model.", "text_projection.")
_IGNORED_KEYS = ("logit_scale",)
_PEFT_WRAPPER = "vision_model.encoder.base_model.model."
_LORA_A = (".lora_A.default.weight", ".lora_A.weight")
_LORA_B = (".lora_B.default.weight", ".lora_B.weight")


def read_tensors(path: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors of `path` whose names start with one of `prefixes` (others are not read)."""
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path, prefixes)
        return _read_pickle(path, prefixes)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt archives raise anything from zipfile to pickle errors
        raise CheckpointError(
            f"{path}: cannot read the weights: {exc}",
            "the file is damaged or incomplete; delete it and run `lbsearch pull` again",
        ) from exc


def _read_safetensors(path: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys() if _wanted(k, prefixes)}  # noqa: SIM118


def _read_pickle(path: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    try:  # mmap reads only the pages of the tensors we keep (zip-format checkpoints)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: does not hold a state dict", "re-download the checkpoint")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: key {key!r} is not a tensor", "re-download the checkpoint"
            )
        if _wanted(key, prefixes):
            out[key] = value
    return out


def _wanted(key: str, prefixes: tuple[str, ...]) -> bool:
    if key.endswith(".position_ids") or key in _IGNORED_KEYS:
        return False
    if not key.startswith(VISION_PREFIXES + TEXT_PREFIXES):
        return True  # unknown keys are kept so that validation can name them
    return key.startswith(prefixes)


def vision_state(
    raw: dict[str, torch.Tensor], spec: VisionSpec, path: Path
) -> dict[str, torch.Tensor]:
    """Normalise vision keys: strip the peft wrapper, merge LoRA, Conv3d patch kernel to Conv2d."""
    state = {_unwrap_peft(k): v for k, v in raw.items()}
    state = _merge_lora(state, spec, path)
    patch_key = "vision_model.embeddings.patch_embedding.weight"
    kernel = state.get(patch_key)
    if kernel is not None and kernel.dim() == 5:
        if kernel.shape[2] != 1:
            raise CheckpointError(
                f"{path}: key {patch_key!r} has temporal depth {kernel.shape[2]}; only 1 is released",
                "this checkpoint is not a released LanguageBind variant",
            )
        state[patch_key] = kernel[:, :, 0]
    return state


def _unwrap_peft(key: str) -> str:
    if key.startswith(_PEFT_WRAPPER):
        key = "vision_model.encoder." + key[len(_PEFT_WRAPPER) :]
    return key.replace(".base_layer.", ".")


def _merge_lora(
    state: dict[str, torch.Tensor], spec: VisionSpec, path: Path
) -> dict[str, torch.Tensor]:
    a_keys = [k for k in state if k.endswith(_LORA_A)]
    if a_keys and spec.lora_r <= 0:
        raise CheckpointError(
            f"{path}: key {a_keys[0]!r} is a LoRA factor but config.json says lora_r = {spec.lora_r}",
            "config.json and weights do not belong together; re-download the checkpoint",
        )
    for a_key in a_keys:
        suffix = next(s for s in _LORA_A if a_key.endswith(s))
        base = a_key[: -len(suffix)]
        b_key = base + suffix.replace("lora_A", "lora_B")
        w_key = base + ".weight"
        _check_lora(state, a_key, b_key, w_key, spec, path)
        lora_a, lora_b = state.pop(a_key), state.pop(b_key)
        delta = (lora_b.double() @ lora_a.double()) * (spec.lora_alpha / spec.lora_r)
        state[w_key] = (state[w_key].double() + delta).to(state[w_key].dtype)
    leftover = [k for k in state if k.endswith(_LORA_B)]
    if leftover:
        raise CheckpointError(f"{path}: key {leftover[0]!r} has no lora_A partner", "re-download")
    return state


def _check_lora(
    state: dict[str, torch.Tensor], a_key: str, b_key: str, w_key: str, spec: VisionSpec, path: Path
) -> None:
    for key in (b_key, w_key):
        if key not in state:
            raise CheckpointError(f"{path}: LoRA key {a_key!r} has no {key!r}", "re-download")
    lora_a, lora_b, weight = state[a_key], state[b_key], state[w_key]
    if lora_a.shape[0] != spec.lora_r:
        raise CheckpointError(
            f"{path}: key {a_key!r} has rank {lora_a.shape[0]} but config.json says lora_r = "
            f"{spec.lora_r}",
            "config.json and weights do not belong together; re-download the checkpoint",
        )
    if (lora_b.shape[0], lora_a.shape[1]) != tuple(weight.shape) or lora_b.shape[1] != lora_a.shape[
        0
    ]:
        raise CheckpointError(
            f"{path}: LoRA factors {a_key!r} {tuple(lora_a.shape)} and {b_key!r} "
            f"{tuple(lora_b.shape)} do not fit {w_key!r} {tuple(weight.shape)}",
            "the checkpoint is damaged; re-download it",
        )


def check_keys(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path
) -> None:
    """Every expected key present with the expected shape, and nothing unknown."""
    for key, reference in expected.items():
        if key not in state:
            raise CheckpointError(
                f"{path}: key {key!r} is missing",
                "the weights do not match config.json; re-download the checkpoint",
            )
        if tuple(state[key].shape) != tuple(reference.shape):
            raise CheckpointError(
                f"{path}: key {key!r} has shape {tuple(state[key].shape)}, config.json implies "
                f"{tuple(reference.shape)}",
                "config.json and weights do not belong together; re-download the checkpoint",
            )
    unknown = sorted(set(state) - set(expected))
    if unknown:
        raise CheckpointError(
            f"{path}: unexpected key {unknown[0]!r} ({len(unknown)} unknown keys)",
            "this is not a released LanguageBind checkpoint layout lbsearch knows",
        )


def fingerprint(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """A digest of names, shapes, dtypes and values: equal digests mean interchangeable towers."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
