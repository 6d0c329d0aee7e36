"""Loading every released variant from tiny checkpoints, LoRA merging, key checks, text sharing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import lbsearch
from lbsearch.errors import CheckpointError, ModelNotAvailableError, UsageError
from lbsearch.models import encoder as encoder_module
from lbsearch.models import runtime
from lbsearch.testing.checkpoints import VARIANTS, write_tiny_checkpoint
from lbsearch.types import Modality

TEXTS = ["a dog barking", "Rain on a tin roof at night.", "", "x " * 100]


def _load(directory: Path, modality: Modality | str, **kwargs: str) -> lbsearch.Encoder:
    return lbsearch.load_encoder(modality, str(directory), device="cpu", dtype="float32", **kwargs)


def _pixels(encoder: lbsearch.Encoder, batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, *encoder.input_shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_embeds_unit_vectors(tiny_dir: Path, name: str) -> None:
    variant = VARIANTS[name]
    encoder = _load(tiny_dir / name, variant.modality)
    pixels = _pixels(encoder)
    vectors = encoder.encode(pixels)
    assert encoder.modality is variant.modality
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(encoder.encode(pixels), vectors)
    cosines = vectors @ vectors.T
    assert cosines[~torch.eye(3, dtype=torch.bool)].max() < 0.999, "inputs must be told apart"
    texts = encoder.encode_text(TEXTS)
    assert texts.shape == (len(TEXTS), encoder.dim)
    torch.testing.assert_close(texts.norm(dim=1), torch.ones(len(TEXTS)))


def test_input_layouts_follow_the_checkpoint(tiny_dir: Path) -> None:
    assert _load(tiny_dir / "image", "image").input_shape == (3, 56, 56)
    assert _load(tiny_dir / "video_ft", "video").input_shape == (3, 8, 56, 56)
    assert _load(tiny_dir / "audio_ft", "audio").input_shape == (3, 112, 1036)
    assert _load(tiny_dir / "audio_lora", "audio").input_shape == (3, 126, 1036)


def test_wrong_input_shape_is_refused(tiny_dir: Path) -> None:
    encoder = _load(tiny_dir / "image", "image")
    with pytest.raises(UsageError, match=r"expected \(batch, 3, 56, 56\)"):
        encoder.encode(torch.zeros(1, 3, 48, 48))


def test_text_padding_is_not_computed_and_changes_nothing(tiny_dir: Path) -> None:
    encoder = lbsearch.load_text_encoder(str(tiny_dir / "image"), device="cpu", dtype="float32")
    batch = encoder.tokenizer(TEXTS[:2])
    assert batch.input_ids.shape[1] == int(batch.eos_positions.max()) + 1 < 77
    together = encoder.encode_text(TEXTS)
    alone = torch.cat([encoder.encode_text([t]) for t in TEXTS])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_tokenizer_matches_clip_conventions(tiny_dir: Path) -> None:
    encoder = lbsearch.load_text_encoder(str(tiny_dir / "image"), device="cpu", dtype="float32")
    ids = encoder.tokenizer.full_ids(["a dog barking", "x " * 100])
    assert ids[0, :5].tolist() == [49406, 320, 1929, 32676, 49407]  # known CLIP BPE ids
    assert (ids[0, 5:] == 49407).all(), "padding repeats EOS"
    assert ids[1, -1] == 49407 and ids.shape == (2, 77), "truncation keeps EOS"


def _raw_state(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "pytorch_model.bin", weights_only=True)


def _rewrite(source: Path, target: Path, state: dict, config_changes: dict | None = None) -> Path:
    shutil.copytree(source, target)
    (target / "model.safetensors").unlink(missing_ok=True)
    torch.save(state, target / "pytorch_model.bin")
    if config_changes:
        config = json.loads((target / "config.json").read_text())
        config["vision_config"].update(config_changes)
        (target / "config.json").write_text(json.dumps(config))
    return target


def _merged_by_hand(state: dict, alpha: float, rank: int) -> dict[str, torch.Tensor]:
    merged = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        plain = key.replace("encoder.base_model.model.", "encoder.")
        a_key = key.replace(".weight", ".lora_A.default.weight")
        if key.endswith(".weight") and a_key in state:
            b = state[key.replace(".weight", ".lora_B.default.weight")]
            value = value + (alpha / rank) * b @ state[a_key]
        merged[plain] = value
    return merged


@pytest.mark.parametrize("name", ["depth", "video_lora", "audio_lora"])
def test_lora_is_merged_as_w0_plus_alpha_over_r_ba(
    tiny_dir: Path, tmp_path: Path, name: str
) -> None:
    variant = VARIANTS[name]
    source = tiny_dir / name
    if not (source / "pytorch_model.bin").exists():
        source = write_tiny_checkpoint(tmp_path / "bin", name)
    state = _raw_state(source)
    premerged = _rewrite(
        source,
        tmp_path / "merged",
        _merged_by_hand(state, variant.lora_alpha, variant.lora_r),
        {"lora_r": 0},
    )
    without_lora = {k: v for k, v in state.items() if ".lora_" not in k}
    plain = _rewrite(source, tmp_path / "plain", without_lora, {"lora_r": 0})
    lora = _load(source, variant.modality)
    pixels = _pixels(lora)
    expected = _load(premerged, variant.modality).encode(pixels)
    torch.testing.assert_close(lora.encode(pixels), expected, atol=1e-5, rtol=0)
    assert not torch.allclose(_load(plain, variant.modality).encode(pixels), expected, atol=1e-3)


def test_current_peft_names_load_too(tiny_dir: Path, tmp_path: Path) -> None:
    source = tiny_dir / "thermal"
    state = _raw_state(source)
    renamed = {}
    for key, value in state.items():
        if key.endswith(("proj.weight", "proj.bias")) and "encoder.base_model" in key:
            stem, leaf = key.rsplit(".", 1)
            key = f"{stem}.base_layer.{leaf}"
        renamed[key] = value
    target = _rewrite(source, tmp_path / "new-peft", renamed)
    pixels = _pixels(_load(source, "thermal"))
    torch.testing.assert_close(
        _load(target, "thermal").encode(pixels), _load(source, "thermal").encode(pixels)
    )


def test_vision_config_dict_takes_precedence(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "video_huge_v15_ft" / "config.json").read_text())
    assert config["vision_config"]["hidden_size"] != config["vision_config_dict"]["hidden_size"]
    encoder = _load(tiny_dir / "video_huge_v15_ft", "video")
    assert encoder.spec.vision.shape.hidden_size == config["vision_config_dict"]["hidden_size"]
    assert encoder.spec.vision.per_frame_cls and encoder.dim == 20


def _mutated(tiny_dir: Path, tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    state = _raw_state(tiny_dir / "video_ft")
    mutate(state)
    return _rewrite(tiny_dir / "video_ft", tmp_path / "bad", state)


@pytest.mark.parametrize(
    ("mutation", "key"),
    [
        (
            lambda s: s.pop("vision_model.post_layernorm.weight"),
            "vision_model.post_layernorm.weight",
        ),
        (
            lambda s: s.update({"vision_model.extra.weight": torch.zeros(1)}),
            "vision_model.extra.weight",
        ),
        (lambda s: s.update({"mystery": torch.zeros(1)}), "mystery"),
        (
            lambda s: s.update({"visual_projection.weight": torch.zeros(3, 3)}),
            "visual_projection.weight",
        ),
    ],
    ids=["missing", "unexpected", "unknown-top-level", "wrong-shape"],
)
def test_inconsistent_weights_name_file_and_key(tiny_dir, tmp_path, mutation, key) -> None:  # type: ignore[no-untyped-def]
    bad = _mutated(tiny_dir, tmp_path, mutation)
    with pytest.raises(CheckpointError) as info:
        _load(bad, "video")
    assert str(bad / "pytorch_model.bin") in info.value.message
    assert repr(key) in info.value.message


def test_lora_rank_disagreeing_with_config_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    source = tiny_dir / "thermal"
    bad = _rewrite(source, tmp_path / "bad", _raw_state(source), {"lora_r": 3})
    with pytest.raises(CheckpointError, match=r"rank 2 but config.json says lora_r = 3"):
        _load(bad, "thermal")


def test_bad_configs_name_file_and_key(tiny_dir: Path, tmp_path: Path) -> None:
    target = shutil.copytree(tiny_dir / "image", tmp_path / "cfg")
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "model_type": "clip"}))
    with pytest.raises(CheckpointError, match=r"config.json: key 'model_type' is 'clip'"):
        _load(target, "image")
    config["vision_config"]["hidden_act"] = "swish"
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"vision_config.hidden_act"):
        _load(target, "image")
    (target / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"cannot read config.json"):
        _load(target, "image")


def test_corrupt_weights_and_wrong_modality(tiny_dir: Path, tmp_path: Path) -> None:
    target = shutil.copytree(tiny_dir / "video_ft", tmp_path / "corrupt")
    weights = target / "pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"cannot read the weights"):
        _load(target, "video")
    with pytest.raises(CheckpointError, match=r"a depth checkpoint, not image"):
        _load(tiny_dir / "depth", "image")
    with pytest.raises(ModelNotAvailableError, match="checkpoint directory not found"):
        _load(tmp_path / "nowhere", "image")


def test_checkpoint_without_position_ids_loads(tiny_dir: Path, tmp_path: Path) -> None:
    state = {k: v for k, v in _raw_state(tiny_dir / "video_ft").items() if "position_ids" not in k}
    target = _rewrite(tiny_dir / "video_ft", tmp_path / "no-ids", state)
    pixels = _pixels(_load(target, "video"))
    torch.testing.assert_close(
        _load(target, "video").encode(pixels), _load(tiny_dir / "video_ft", "video").encode(pixels)
    )


def test_identical_text_towers_are_loaded_once(tiny_dir: Path) -> None:
    image = lbsearch.load_text_encoder(str(tiny_dir / "image"), device="cpu", dtype="float32")
    depth = lbsearch.load_text_encoder(str(tiny_dir / "depth"), device="cpu", dtype="float32")
    huge = lbsearch.load_text_encoder(
        str(tiny_dir / "video_huge_v15_ft"), device="cpu", dtype="float32"
    )
    assert image is depth
    assert huge is not image and huge.dim == 20
    assert _load(tiny_dir / "thermal", "thermal").text_encoder is image


def test_text_encoder_reads_only_text_weights(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, ...]] = []
    real = encoder_module.read_tensors

    def spy(path: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
        seen.append(prefixes)
        tensors = real(path, prefixes)
        assert not any(k.startswith(("vision_model", "visual_projection")) for k in tensors)
        return tensors

    monkeypatch.setattr(encoder_module, "read_tensors", spy)
    target = write_tiny_checkpoint(tmp_path / "fresh", "image", text_seed=99)
    text = lbsearch.load_text_encoder(str(target), device="cpu", dtype="float32")
    assert seen == [("text_model.", "text_projection.")]
    assert not any("vision" in name for name, _ in text.model.named_parameters())


def test_attention_kernels_agree(tiny_dir: Path) -> None:
    eager = _load(tiny_dir / "video_v15_ft", "video", attention="eager")
    sdpa = _load(tiny_dir / "video_v15_ft", "video", attention="sdpa")
    pixels = _pixels(eager)
    torch.testing.assert_close(eager.encode(pixels), sdpa.encode(pixels), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["image", "video_v15_ft", "audio_ft"])
def test_bfloat16_stays_close_to_float32(tiny_dir: Path, name: str) -> None:
    variant = VARIANTS[name]
    full = _load(tiny_dir / name, variant.modality)
    half = lbsearch.load_encoder(
        variant.modality, str(tiny_dir / name), device="cpu", dtype="bfloat16"
    )
    pixels = _pixels(full)
    cosine = (full.encode(pixels) * half.encode(pixels)).sum(dim=1)
    assert half.encode(pixels).dtype == torch.float32
    assert cosine.min() > 0.99, cosine


def test_auto_placement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    device = runtime.resolve_device("auto")
    assert device.type == "cpu"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_dtype("auto", device) == torch.bfloat16
    assert runtime.resolve_attention("auto", device, torch.bfloat16) == "eager"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_dtype("auto", device) == torch.float32
    assert runtime.resolve_dtype("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(UsageError, match="CUDA is not available"):
        runtime.resolve_device("cuda")
    with pytest.raises(UsageError, match="unknown dtype"):
        runtime.resolve_dtype("int8", device)
