"""Record reference fixtures from the original LanguageBind implementation.

The fixtures under ``tests/fixtures/reference/`` let lbsearch's own encoders be checked against the
pip package ``languagebind`` 0.1.0 (a repackaging of PKU-YuanGroup/LanguageBind). This script only
*imports* that package; nothing of it is copied into lbsearch. It must run in an isolated virtual
environment outside the repository, never in lbsearch's own development environment (the reference
needs transformers 4.45.x, lbsearch uses transformers 5).

Reference environment (tried on Python 3.11, CPU only)::

    python3 -m venv /work/refenv
    P=/work/refenv/bin/pip
    # torch/torchvision: the CUDA build of the matched pair; it runs fine without a GPU
    $P install torch==2.14.1 torchvision==0.29.1
    # only the pure-torch parts of torchaudio are used (kaldi fbank, resample)
    $P install torchaudio==2.11.0 --no-deps
    $P install transformers==4.45.2 peft==0.13.2 einops numpy pillow \
        opencv-python-headless soundfile decord==0.6.0 ftfy==6.1.1 iopath fvcore av
    $P install pytorchvideo==0.1.5 languagebind==0.1.0 --no-deps

transformers must stay below 4.46 (4.46 added an input-size check that breaks the audio tower).
The script itself applies the small import shims the package needs on current torch/torchvision
(see ``install_shims``); nothing in the venv is patched.

Usage (from the repository root)::

    /work/refenv/bin/python tools/make_reference_fixtures.py encoders
    /work/refenv/bin/python tools/make_reference_fixtures.py encoders --variants image audio_ft
    /work/refenv/bin/python tools/make_reference_fixtures.py encoders --no-check

``encoders`` builds tiny random-weight models for nine LanguageBind variants with the package's own
config and model classes, saves each one in the layout of the released Hugging Face checkpoints
(``config.json`` plus ``pytorch_model.bin`` or ``model.safetensors``, LoRA weights unmerged with the
old peft key names) and records the reference's text and modality features for fixed inputs in
``expected.npz`` with a ``meta.json`` describing how the inputs were made. Unless ``--no-check`` is
given it then reloads every saved checkpoint into a fresh reference model (LoRA merged by hand, and
separately with the LoRA keys mapped back to current peft names) and checks that the recorded
outputs are reproduced, and prints pairwise cosines showing that different inputs give clearly
different outputs.

New fixture families (e.g. ``preprocessing``) are added as another entry in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.metadata
import json
import logging
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
MERGES_GZ = REPO_ROOT / "lbsearch" / "testing" / "data" / "clip_bpe_merges.txt.gz"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "reference"

# A languagebind LanguageBind<Modality> model (a transformers PreTrainedModel); the package is untyped.
RefModel = Any

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
AUDIO_MEAN = -4.2677393
AUDIO_STD = 4.5689974

# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def install_shims() -> None:
    """Make the reference importable on current torch/torchvision without touching the venv."""
    import torchvision.transforms._functional_tensor as functional_tensor

    # pytorchvideo 0.1.5 imports the module under its pre-0.17 name.
    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)
    # peft's LoRA wrapping touches torch.distributed.tensor, which is not imported by default.
    import torch.distributed.tensor  # noqa: F401


def import_reference() -> ModuleType:
    """Import the ``languagebind`` package after checking that this is the reference venv."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    if (major, minor) >= (4, 46):
        sys.exit(
            f"transformers {transformers.__version__} found: run this script with the isolated "
            "reference venv described in its docstring (transformers 4.45.x)."
        )
    install_shims()
    import languagebind

    # The Huge config's deliberate vision_config / vision_config_dict conflict would otherwise log
    # one warning per key on every load; load_config checks the outcome instead.
    transformers.logging.set_verbosity_error()
    logging.getLogger("languagebind").setLevel(logging.ERROR)
    return languagebind


def package_versions() -> dict[str, str]:
    names = ["torch", "transformers", "peft", "languagebind", "tokenizers", "ftfy", "numpy"]
    return {name: importlib.metadata.version(name) for name in names}


# ---------------------------------------------------------------------------------------------
# Tokenizer (the reference's own slow CLIPTokenizer subclass, vocabulary rebuilt offline)
# ---------------------------------------------------------------------------------------------


def byte_level_symbols() -> list[str]:
    """The 256 byte-level BPE symbols in GPT-2 ``bytes_to_unicode`` order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    remapped = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable]
    symbols += [chr(256 + offset) for offset in range(len(remapped))]
    return symbols


def write_clip_vocab(directory: Path) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` of the CLIP BPE into ``directory``."""
    with gzip.open(MERGES_GZ, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    header, merges = lines[0], [line for line in lines[1:] if line]
    symbols = byte_level_symbols()
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(merge.split(" ")) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != VOCAB_SIZE:
        raise RuntimeError(f"expected {VOCAB_SIZE} vocabulary entries, got {len(tokens)}")
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    vocab_path.write_text(json.dumps({tok: i for i, tok in enumerate(tokens)}), encoding="utf-8")
    merges_path.write_text("\n".join([header, *merges]) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def build_tokenizer(tokenizer_class: type, directory: Path) -> Any:
    vocab_path, merges_path = write_clip_vocab(directory)
    return tokenizer_class(vocab_file=str(vocab_path), merges_file=str(merges_path))


def tokenize(tokenizer: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    batch = tokenizer(
        list(texts),
        max_length=CONTEXT_LENGTH,
        padding="max_length",
        truncation=True,
        return_tensors="np",
    )
    return {key: batch[key].astype(np.int64) for key in ("input_ids", "attention_mask")}


# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Tiny models with input-sensitive random weights
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Released checkpoint layout
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Reference outputs
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def run_encoders(args: argparse.Namespace) -> int:
    lb = import_reference()
    root: Path = args.out / "encoders"
    selected = [v for v in VARIANTS if not args.variants or v.name in args.variants]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in selected:
            tokenizer = build_tokenizer(lb_tokenizer_class(lb, variant), Path(tmp))
            print(f"{variant.name}:")
            arrays = record_variant(lb, variant, tokenizer, root)
            ok = check_distinct(arrays)
            if args.check:
                ok &= check_reload(lb, variant, arrays, root)
            if not ok:
                failures.append(variant.name)
    print("FAILED: " + ", ".join(failures) if failures else f"wrote {len(selected)} variants")
    return 1 if failures else 0


def lb_tokenizer_class(lb: ModuleType, variant: Variant) -> type:
    return getattr(lb, f"LanguageBind{variant.modality.capitalize()}Tokenizer")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"encoders": run_encoders}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="fixture root folder")
    commands = parser.add_subparsers(dest="command", required=True)
    encoders = commands.add_parser("encoders", help="tiny random-weight encoder fixtures")
    encoders.add_argument("--variants", nargs="*", choices=[v.name for v in VARIANTS])
    encoders.add_argument("--no-check", dest="check", action="store_false")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    torch.set_num_threads(2)
    args = parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
