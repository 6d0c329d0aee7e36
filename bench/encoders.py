"""Encoder back-ends and dtypes side by side on ViT-L-sized random LanguageBind models.

For each modality, every configuration (torch float32, torch bfloat16, ONNX Runtime float32,
ONNX Runtime int8) encodes the same seeded batch, interleaved round by round so that a busy
machine slows them alike. Prints items/s (best round), the ratio to torch float32, GFLOP/s as a
share of this machine's fp32 GEMM peak (FLOPs counted by torch's FlopCounterMode on one item; the
peak is the best F.linear rate at a ViT-L MLP shape, measured in every round), and the cosine of
each configuration's vectors to torch float32's. ONNX Runtime towers are exported first into a
temporary cache: the export time and the cache size per tower are printed too. The text tower
(12 layers x 768, as released) runs last, with the image checkpoint.

Then "auto" runs as lbsearch runs it (lbsearch.embedder.tuner: one batch per candidate, the
exports being cached by now; int8 a candidate when it is in --configs): the bench prints its
choice, whether it equals this run's fastest faithful configuration (cosine >= 0.9999 to torch
float32, int8 >= 0.998), and what measuring cost against a 1,000-item run at the chosen speed.

    python bench/encoders.py                              # image + text, all four configurations
    python bench/encoders.py --modalities image,audio --rounds 2 --batch-size 2
    python bench/encoders.py --configs torch/float32,onnxruntime/int8 --no-text
    python bench/encoders.py --tiny --modalities image,video   # a smoke run of the script

Weights are random; speed does not depend on the values, and int8's cosine on random towers is a
fair stand-in for trained ones (the same weight ranges per channel). Checkpoints are written to a
temporary directory in the released layout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import lbsearch
from lbsearch.embedder import EmbedderOptions
from lbsearch.embedder.onnx import cpu_has_vnni, load_onnx_media_tower, load_onnx_text_tower
from lbsearch.embedder.onnx.cache import folder_size
from lbsearch.embedder.tuned_towers import (
    SAMPLE_TEXTS,
    Tuned,
    tuned_media_tower,
    tuned_text_tower,
)
from lbsearch.embedder.tuner import Candidate, Measured, choose, min_cosine
from lbsearch.models.checkpoint import open_checkpoint
from lbsearch.models.runtime import cpu_has_native_bf16
from lbsearch.testing.checkpoints import VIT_L, write_tiny_checkpoint
from lbsearch.types import Modality

VARIANT_OF = {
    "image": "image",
    "video": "video_ft",
    "audio": "audio_ft",
    "depth": "depth",
    "thermal": "thermal",
}
CONFIGS = "torch/float32,torch/bfloat16,onnxruntime/float32,onnxruntime/int8"
REFERENCE = "torch/float32"
Encode = Callable[[], np.ndarray]


@dataclass
class Config:
    """One back-end/dtype: its encode call on the fixed inputs, and what it measured."""

    name: str
    encode: Encode
    export: str = ""
    seconds: list[float] = field(default_factory=list)
    vectors: np.ndarray | None = None

    def run(self) -> None:
        start = time.perf_counter()
        self.vectors = self.encode()
        self.seconds.append(time.perf_counter() - start)


def gemm_peak(budget_s: float = 2.0) -> float:
    """Best fp32 GFLOP/s of one ViT-L MLP matmul (8 x 257 tokens, 1024 -> 4096) through F.linear,
    the ceiling the transformer layers can approach."""
    x, w = torch.randn(8 * 257, 1024), torch.randn(4096, 1024)
    flops = 2 * x.shape[0] * w.shape[0] * w.shape[1]
    best, deadline = 0.0, time.perf_counter() + budget_s
    with torch.inference_mode():
        torch.nn.functional.linear(x, w)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best


def flops_per_item(run_one: Callable[[], object]) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        run_one()
    return counter.get_total_flops() / 1e9


def entries(cache: Path, kind: str) -> set[Path]:
    """The exported towers of `kind` in the cache (not lock files or temporary folders)."""
    folder = cache / "onnx" / "v1" / kind
    return {p for p in folder.glob("*-*") if p.is_dir() and not p.name.startswith(".")}


def export_note(seconds: float, entry: Path) -> str:
    return f"export {seconds:.0f} s, cache {folder_size(entry) / 1e6:.0f} MB"


def media_configs(
    model_dir: Path, modality: str, names: list[str], batch: int, threads: int, cache: Path
) -> tuple[list[Config], float]:
    """The configurations for one modality tower, and its GFLOP per item."""
    mod = Modality.parse(modality)
    checkpoint = open_checkpoint(str(model_dir))
    shape = checkpoint.spec.input_shape
    pixels = np.random.RandomState(0).standard_normal((batch, *shape)).astype(np.float32)
    configs: list[Config] = []
    flops = 0.0
    for name in names:
        backend, dtype = name.split("/")
        if backend == "torch":
            encoder = lbsearch.load_encoder(mod, str(model_dir), device="cpu", dtype=dtype)
            if dtype == "float32":
                flops = flops_per_item(torch_media(encoder, pixels[:1]))
            configs.append(Config(name, torch_media(encoder, pixels)))
            continue
        before = entries(cache, "media")
        start = time.perf_counter()
        tower = load_onnx_media_tower(checkpoint, mod, dtype, threads, cache_dir=cache)
        seconds = time.perf_counter() - start
        (entry,) = entries(cache, "media") - before
        configs.append(Config(name, partial(tower.encode, pixels), export_note(seconds, entry)))
    return configs, flops


def torch_media(encoder: lbsearch.Encoder, pixels: np.ndarray) -> Encode:
    tensor = torch.from_numpy(pixels)
    return lambda: encoder.encode(tensor).float().numpy()


def text_configs(model_dir: Path, names: list[str], threads: int, cache: Path) -> list[Config]:
    texts = list(SAMPLE_TEXTS)  # the batch "auto" measures, so that the two rankings compare
    checkpoint = open_checkpoint(str(model_dir))
    configs: list[Config] = []
    for name in names:
        backend, dtype = name.split("/")
        if backend == "torch":
            encoder = lbsearch.load_text_encoder(str(model_dir), device="cpu", dtype=dtype)
            configs.append(Config(name, torch_text(encoder, texts)))
        elif dtype == "float32":  # text towers always run float32 on ONNX Runtime
            start = time.perf_counter()
            tower = load_onnx_text_tower(checkpoint, threads, cache_dir=cache)
            seconds = time.perf_counter() - start
            (entry,) = entries(cache, "text")
            configs.append(Config(name, partial(tower.encode, texts), export_note(seconds, entry)))
    return configs


def torch_text(encoder: lbsearch.TextEncoder, texts: list[str]) -> Encode:
    return lambda: encoder.encode_text(texts).float().numpy()


def interleave(configs: list[Config], rounds: int) -> list[float]:
    """Each round runs every configuration once; returns the GEMM peak measured per round."""
    for config in configs:
        config.encode()  # warm-up: first-call allocations and ONNX Runtime's pre-packing
    peaks = []
    for _ in range(rounds):
        peaks.append(gemm_peak())
        for config in configs:
            config.run()
    return peaks


def fastest_faithful(configs: list[Config], items: int) -> Candidate | None:
    """The tuner's rule applied to this run's figures (best round, cosine to torch float32)."""
    reference = next((c for c in configs if c.name == REFERENCE), None)
    if reference is None or reference.vectors is None:
        return None
    rows = [
        Measured(
            Candidate.parse(c.name),
            items / min(c.seconds),
            min_cosine(c.vectors, reference.vectors) if c.vectors is not None else -1.0,
        )
        for c in configs
    ]
    return choose(rows)


def auto_media(model_dir: Path, modality: str, names: list[str], threads: int, batch: int) -> Tuned:
    """What "auto" chooses at a tower's first use, as lbsearch runs it (the exports are cached
    by now: every configuration of this run is a candidate), at this run's batch size (the
    ranking can change with it: GEMMs are more efficient on larger batches)."""
    int8 = "allow" if "onnxruntime/int8" in names else "deny"
    options = EmbedderOptions(device="cpu", threads=threads, batch_size=batch, int8=int8)
    checkpoint = open_checkpoint(str(model_dir))
    return tuned_media_tower(checkpoint, Modality.parse(modality), options)


def auto_text(model_dir: Path, threads: int) -> Tuned:
    options = EmbedderOptions(device="cpu", threads=threads)
    return tuned_text_tower(open_checkpoint(str(model_dir)), options)


def report_auto(tuned: Tuned, fastest: Candidate | None, first_use: bool) -> None:
    """auto's own measurement, its choice, and whether it is this run's fastest faithful one."""
    decision = tuned.decision
    if decision is None:
        print(f"  auto: {tuned.chosen} (the only candidate here)")
        return
    rows = ", ".join(
        f"{m.candidate} {m.items_per_s:.2f}/s cos {m.cosine:.5f}" for m in decision.table
    )
    agree = "equals" if decision.chosen == fastest else "DIFFERS FROM"
    print(f"  auto chose {decision.chosen}: {agree} this run's fastest faithful ({fastest})")
    print(f"    its own batch of {decision.items}: {rows}; measuring took {decision.seconds:.1f} s")
    if first_use:
        chosen = next(m for m in decision.table if m.candidate == decision.chosen)
        run_s = 1000 / chosen.items_per_s
        print(
            f"    cost at first use: {decision.seconds:.1f} s = "
            f"{100 * decision.seconds / run_s:.1f}% of a 1,000-item run at the chosen speed "
            f"({run_s:.0f} s)"
        )


def report(title: str, configs: list[Config], items: int, flops: float, peak: float) -> None:
    reference = next((c for c in configs if c.name == REFERENCE), None)
    base_rate = items / min(reference.seconds) if reference else 0.0
    ceiling = f", fp32 GEMM peak {peak:.0f} GFLOP/s" if peak else ""
    print(f"\n{title}: {items} items per call, best of {len(configs[0].seconds)} rounds{ceiling}")
    for config in configs:
        rate = items / min(config.seconds)
        ratio = f"{rate / base_rate:5.2f}x" if base_rate else "  -  "
        share = f"{rate * flops / peak:4.2f}" if flops else "  - "
        cosine = "  -    "
        if reference is not None and config.vectors is not None:
            assert reference.vectors is not None
            cosine = f"{float((config.vectors * reference.vectors).sum(axis=1).min()):.5f}"
        print(
            f"  {config.name:20s} {rate:8.3f} items/s  {ratio} torch fp32  "
            f"{share} x fp32 GEMM peak  cosine {cosine}  {config.export}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modalities", default="image")
    parser.add_argument("--configs", default=CONFIGS)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's thread count")
    parser.add_argument("--no-text", action="store_true", help="skip the text tower")
    parser.add_argument("--tiny", action="store_true", help="tiny towers: a smoke run")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    names = args.configs.split(",")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    bf16 = "native" if cpu_has_native_bf16() else "emulated (no AVX512-BF16/AMX)"
    vnni = "VNNI" if cpu_has_vnni() else "no VNNI: int8 uses reduce_range"
    print(f"torch {torch.__version__}, {threads} threads, bf16 {bf16}, int8 {vnni}")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        os.environ["LBSEARCH_CACHE"] = str(cache)  # text-tower identities too: not the user's
        for index, modality in enumerate(args.modalities.split(",")):
            model_dir = write_tiny_checkpoint(
                Path(tmp) / modality,
                VARIANT_OF[modality],
                dims=None if args.tiny else VIT_L,
                weights_format="safetensors",
            )
            configs, flops = media_configs(
                model_dir, modality, names, args.batch_size, threads, cache
            )
            peaks = interleave(configs, args.rounds)
            report(f"{modality} tower", configs, args.batch_size, flops, max(peaks))
            fastest = fastest_faithful(configs, args.batch_size)
            del configs  # ViT-L towers: free them before auto loads its own
            auto = auto_media(model_dir, modality, names, threads, args.batch_size)
            report_auto(auto, fastest, True)
            if index == 0 and not args.no_text:
                text = text_configs(model_dir, names, threads, cache)
                interleave(text, args.rounds)
                items = len(SAMPLE_TEXTS)
                report(f"text tower ({items} texts)", text, items, 0.0, 0.0)
                fastest = fastest_faithful(text, items)
                del text
                report_auto(auto_text(model_dir, threads), fastest, False)
            shutil.rmtree(model_dir)  # ViT-L checkpoints are 1.7 GB each
            shutil.rmtree(cache / "onnx" / "v1" / "media", ignore_errors=True)


if __name__ == "__main__":
    main()
