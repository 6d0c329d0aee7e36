"""Record the reference LanguageBind processors' outputs for small generated media files.

The fixtures under ``tests/fixtures/reference/preprocessing/`` let lbsearch's media decoding
(``lbsearch.media``) be checked against the pip package ``languagebind`` 0.1.0's own processors:
LanguageBindImageProcessor, ...ThermalProcessor, ...DepthProcessor, ...VideoProcessor (decord
backend, its random horizontal flip replaced by identity) and ...AudioProcessor (numpy's RNG
seeded; the full normalised fbank is recorded too, so fixed windows can be checked).

It runs only in the isolated reference venv described in ``tools/make_reference_fixtures.py``'s
docstring (torch 2.14.1 + torchvision 0.29.1, torchaudio 2.11.0 --no-deps, transformers 4.45.2,
decord 0.6.0, soundfile, pytorchvideo 0.1.5 --no-deps, languagebind 0.1.0 --no-deps). It imports
nothing of lbsearch; inputs are made with ``tests/media_factory.py`` (PyAV, Pillow, numpy only).

Usage (from the repository root)::

    /work/refenv/bin/python tools/make_preprocessing_fixtures.py

Outputs: ``inputs/`` (the media), ``expected.npz`` (float32 arrays keyed ``<case>/<what>``) and
``manifest.json`` (per case: input file, modality, reference settings, array keys, shapes),
plus ``resample/*``: torchaudio's resampling of a noise signal from several rates to 16 kHz.
Image and video outputs are 224 x 224 (the reference hard-codes it); to keep the folder small
they are stored as a strided sample (image rows 1::4, cols 2::4; video rows 1::8, cols 2::8)
plus per-channel mean and mean-absolute value of the whole tensor.
"""

from __future__ import annotations

import importlib.metadata
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT = REPO_ROOT / "tests" / "fixtures" / "reference" / "preprocessing"
sys.path.insert(0, str(REPO_ROOT / "tests"))
import media_factory as mf  # noqa: E402

STILL_SAMPLE = (slice(None), slice(1, None, 4), slice(2, None, 4))
VIDEO_SAMPLE = (slice(None), slice(None), slice(1, None, 8), slice(2, None, 8))
AUDIO_TARGET_LENGTH = 204  # small windows keep fixtures small; the code path is the same
SEED = 1234
RESAMPLE_RATES = (8000, 11025, 22050, 44100, 48000)


@dataclass(frozen=True)
class Case:
    name: str
    modality: str  # image, thermal, depth, video, audio
    filename: str
    make: Callable[[Path], object]
    settings: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("img_small_portrait", "image", "img_small_portrait.png", lambda p: mf.image(p, 40, 64)),
    Case("img_wide_jpeg", "image", "img_wide.jpg", lambda p: mf.image(p, 400, 300, quality=85)),
    Case(
        "img_half_crop", "image", "img_half_crop.webp", lambda p: mf.image(p, 67, 40, lossless=True)
    ),
    Case("img_exact", "image", "img_exact.png", lambda p: mf.image(p, 224, 224, seed=3)),
    Case("thermal_jpeg", "thermal", "thermal_ir.jpg", lambda p: mf.image(p, 320, 256, seed=5)),
    Case("depth_png_small", "depth", "depth_small.png", lambda p: mf.depth_png(p, 80, 60)),
    Case(
        "depth_tiff_large",
        "depth",
        "depth_large.tif",
        lambda p: mf.depth_png(p, 260, 230, max_mm=9000, seed=2),
    ),
    Case("vid_h264_small", "video", "vid_h264_small.mp4", lambda p: mf.video(p, 3.0, fps=10)),
    Case(
        "vid_mpeg4_portrait",
        "video",
        "vid_mpeg4_portrait.mp4",
        lambda p: mf.video(p, 1.0, fps=25, width=64, height=96, codec="mpeg4"),
    ),
    Case(
        "vid_vp9_webm",
        "video",
        "vid_vp9.webm",
        lambda p: mf.video(p, 1.4, fps=30, width=96, height=64, codec="libvpx-vp9"),
    ),
    Case(
        "vid_h264_downscale",
        "video",
        "vid_h264_downscale.mp4",
        lambda p: mf.video(p, 2.0, fps=12, width=320, height=240, seed=4),
    ),
    Case("aud_16k_mono", "audio", "aud_16k_mono.wav", lambda p: mf.audio(p, 1.0, 16000)),
    Case(
        "aud_44k_stereo",
        "audio",
        "aud_44k_stereo.flac",
        lambda p: mf.audio(p, 1.0, 44100, channels=2, seed=1),
    ),
    Case("aud_8k_long", "audio", "aud_8k_long.wav", lambda p: mf.audio(p, 3.0, 8000, seed=2)),
    Case("aud_48k_long", "audio", "aud_48k_long.flac", lambda p: mf.audio(p, 2.5, 48000, seed=3)),
    Case("aud_one_frame", "audio", "aud_one_frame.wav", lambda p: mf.audio(p, 0.03, 16000, seed=4)),
    Case(
        "aud_22k_126mel",
        "audio",
        "aud_22k_126mel.wav",
        lambda p: mf.audio(p, 1.5, 22050, seed=5),
        {"num_mel_bins": 126},
    ),
]


def install_shims() -> None:
    """What the reference needs on current torch/torchvision/torchaudio (spec section 9)."""
    import soundfile
    import torchaudio
    import torchvision.transforms._functional_tensor as functional_tensor

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)

    def load(path: str) -> tuple[torch.Tensor, int]:
        # soundfile's old torchaudio backend: float32, channels first, PCM / 32768
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data.T)), rate

    torchaudio.load = load


def still(lb: Any, case: Case, path: Path) -> dict[str, np.ndarray]:
    classes = {
        "image": (lb.LanguageBindImageConfig, lb.LanguageBindImageProcessor),
        "thermal": (lb.LanguageBindThermalConfig, lb.LanguageBindThermalProcessor),
        "depth": (lb.LanguageBindDepthConfig, lb.LanguageBindDepthProcessor),
    }
    config_cls, processor_cls = classes[case.modality]
    config = config_cls(vision_config={"max_depth": 10})
    out = processor_cls(config)(images=[str(path)])["pixel_values"][0].numpy()
    return {"sample": out[STILL_SAMPLE], **channel_stats(out, (1, 2)), "shape": np.array(out.shape)}


def video(lb: Any, case: Case, path: Path) -> dict[str, np.ndarray]:
    import decord
    from torchvision.transforms import Lambda

    config = lb.LanguageBindVideoConfig(
        vision_config={"video_decode_backend": "decord", "num_frames": 8}
    )
    processor = lb.LanguageBindVideoProcessor(config)
    steps = processor.transform.transforms
    flips = [i for i, s in enumerate(steps) if type(s).__name__ == "RandomHorizontalFlipVideo"]
    assert len(flips) == 1, "expected exactly one random flip in the reference video transform"
    steps[flips[0]] = Lambda(lambda x: x)  # deterministic, as lbsearch
    out = processor(images=[str(path)])["pixel_values"][0].numpy()
    count = len(decord.VideoReader(str(path), ctx=decord.cpu(0)))
    indices = np.linspace(0, count - 1, 8, dtype=int)  # what the processor reads
    return {
        "sample": out[VIDEO_SAMPLE],
        **channel_stats(out, (1, 2, 3)),
        "shape": np.array(out.shape),
        "frame_count": np.array(count),
        "indices": indices,
    }


def audio(lb: Any, case: Case, path: Path) -> dict[str, np.ndarray]:
    mel_bins = case.settings.get("num_mel_bins", 112)
    config = lb.LanguageBindAudioConfig(
        vision_config={
            "audio_sample_rate": 16000,
            "num_mel_bins": mel_bins,
            "target_length": AUDIO_TARGET_LENGTH,
            "audio_mean": -4.2677393,
            "audio_std": 4.5689974,
        }
    )
    processor = lb.LanguageBindAudioProcessor(config)
    np.random.seed(SEED)
    out = processor(images=[str(path)])["pixel_values"][0].numpy()
    mel = full_mel(processor.transform, path)
    result = {"mel": mel, "shape": np.array(out.shape)}
    if len(mel) <= AUDIO_TARGET_LENGTH:
        assert all(np.array_equal(out[0], out[c]) for c in (1, 2)), "short audio: 3 equal maps"
        result["output_channel0"] = out[0]
    else:  # 3 random windows: record where each channel starts in the full fbank
        result["random_starts"] = np.array([window_start(mel, out[c]) for c in range(3)])
    return result


def full_mel(transform: Any, path: Path) -> np.ndarray:
    """The reference's normalised fbank of the whole file, before its window choice."""
    import torchaudio

    wave, rate = torchaudio.load(str(path))
    if rate != transform.sample_rate:
        wave = torchaudio.functional.resample(wave, orig_freq=rate, new_freq=transform.sample_rate)
    mel = transform.get_mel(wave)  # (frames, mel bins); removes the mean in place first
    return ((mel - transform.audio_mean) / (transform.audio_std * 2)).numpy()


def window_start(mel: np.ndarray, channel: np.ndarray) -> int:
    """Which start s makes mel[s:s+L].T equal to one channel of the processor's output."""
    length = channel.shape[1]
    errors = [np.abs(mel[s : s + length].T - channel).max() for s in range(len(mel) - length + 1)]
    best = int(np.argmin(errors))
    assert errors[best] < 1e-5, "a random window is not a slice of the full fbank"
    return best


def resampling() -> dict[str, np.ndarray]:
    """torchaudio.functional.resample of one noise signal from several rates to 16 kHz."""
    import torchaudio

    signal = (np.random.default_rng(SEED).standard_normal(1500) * 0.3).astype(np.float32)
    out = {"input": signal}
    for rate in RESAMPLE_RATES:
        resampled = torchaudio.functional.resample(torch.from_numpy(signal), rate, 16000)
        out[str(rate)] = resampled.numpy()
    return out


def channel_stats(out: np.ndarray, axes: tuple[int, ...]) -> dict[str, np.ndarray]:
    full = out.astype(np.float64)
    return {"channel_mean": full.mean(axis=axes), "channel_absmean": np.abs(full).mean(axis=axes)}


def main() -> int:
    torch.set_num_threads(2)
    random.seed(SEED)
    install_shims()
    import languagebind as lb

    inputs = OUT / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    manifest: dict[str, Any] = {"versions": versions(), "cases": {}}
    record = {"image": still, "thermal": still, "depth": still, "video": video, "audio": audio}
    for case in CASES:
        path = inputs / case.filename
        case.make(path)
        outputs = record[case.modality](lb, case, path)
        for key, value in outputs.items():
            arrays[f"{case.name}/{key}"] = (
                value.astype(np.float32) if value.dtype == np.float64 else value
            )
        manifest["cases"][case.name] = describe(case, path, outputs)
        print(f"{case.name}: {', '.join(f'{k}{list(v.shape)}' for k, v in outputs.items())}")
    for key, value in resampling().items():
        arrays[f"resample/{key}"] = value
    manifest["resample"] = {"rates": list(RESAMPLE_RATES), "to": 16000, "input_samples": 1500}
    np.savez_compressed(OUT / "expected.npz", **arrays)
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (OUT / "manifest.json").write_text(text, encoding="utf-8")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")
    return 0


def describe(case: Case, path: Path, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    settings = dict(case.settings)
    if case.modality == "audio":
        settings.setdefault("num_mel_bins", 112)
        settings["target_length"] = AUDIO_TARGET_LENGTH
        settings["numpy_seed"] = SEED
    if case.modality == "depth":
        settings["max_depth"] = 10
    return {
        "input": f"inputs/{path.name}",
        "modality": case.modality,
        "settings": settings,
        "arrays": {k: list(v.shape) for k, v in outputs.items()},
    }


def versions() -> dict[str, str]:
    names = ["languagebind", "torch", "torchvision", "torchaudio", "decord", "av", "pillow"]
    names += ["numpy", "soundfile", "pytorchvideo", "opencv-python-headless"]
    return {name: importlib.metadata.version(name) for name in names}


if __name__ == "__main__":
    raise SystemExit(main())
