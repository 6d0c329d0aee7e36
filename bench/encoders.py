"""Encoder throughput on ViT-L-sized random LanguageBind models, against this machine's GEMM peak.

Prints, per modality and dtype: items/s at the batch size, GFLOP/s achieved (FLOPs counted by
torch's FlopCounterMode on one item), and that as a share of the peak GEMM rate of the same dtype
measured in the same run; plus the cosine between bf16 and fp32 embeddings of the same inputs.

    python bench/encoders.py                       # every modality, float32 and bfloat16
    python bench/encoders.py --modalities image --dtypes float32 --batch-size 4

Weights are random (ViT-L/14 vision, 12-layer 768-d text, as released); speed does not depend on
the values. Checkpoints are written to a temporary directory in the released layout.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import lbsearch
from lbsearch.config import load_config
from lbsearch.models.runtime import cpu_has_native_bf16
from lbsearch.testing.checkpoints import VIT_L, write_tiny_checkpoint

VARIANT_OF = {
    "image": "image",
    "video": "video_ft",
    "audio": "audio_ft",
    "depth": "depth",
    "thermal": "thermal",
}


@dataclass(frozen=True)
class Measurement:
    modality: str
    dtype: str
    batch_size: int
    items_per_s: float
    gflop_per_item: float
    peak_gflops: float

    @property
    def gflops(self) -> float:
        return self.items_per_s * self.gflop_per_item


def gemm_peak(dtype: torch.dtype, budget_s: float = 3.0) -> float:
    """Best GFLOP/s of one ViT-L MLP matmul (8 x 257 tokens, 1024 -> 4096), through the same
    F.linear path the towers use: the ceiling the transformer layers can approach."""
    x = torch.randn(8 * 257, 1024, dtype=dtype)
    w = torch.randn(4096, 1024, dtype=dtype)
    flops = 2 * x.shape[0] * w.shape[0] * w.shape[1]
    with torch.inference_mode():
        torch.nn.functional.linear(x, w)
        best, deadline = 0.0, time.perf_counter() + budget_s
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best


def flops_per_item(encoder: lbsearch.Encoder) -> float:
    pixels = torch.randn(1, *encoder.input_shape)
    counter = FlopCounterMode(display=False)
    with counter:
        encoder.encode(pixels)
    return counter.get_total_flops() / 1e9


def timed_encode(
    encoder: lbsearch.Encoder, pixels: torch.Tensor, budget_s: float, warm_up: bool
) -> tuple[float, torch.Tensor]:
    """Items/s over whole batches until the budget is spent (at least one), and the vectors."""
    if warm_up:
        encoder.encode(pixels[:1])
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < budget_s:
        vectors = encoder.encode(pixels)
        done += len(pixels)
    return done / (time.perf_counter() - start), vectors


def text_per_second(model_dir: Path, dtype: str, budget_s: float) -> float:
    encoder = lbsearch.load_text_encoder(str(model_dir), device="cpu", dtype=dtype)
    texts = [f"a photo of a dog number {i} running on the beach" for i in range(32)]
    encoder.encode_text(texts[:2])
    done, start = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - start < budget_s:
        encoder.encode_text(texts)
        done += len(texts)
    return done / (time.perf_counter() - start)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modalities", default=",".join(VARIANT_OF))
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--batch-size", type=int, default=load_config().runtime.batch_size)
    parser.add_argument("--budget-s", type=float, default=20.0, help="timing per measurement")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    dtypes = args.dtypes.split(",")
    native = "native" if cpu_has_native_bf16() else "emulated (no AVX512-BF16/AMX)"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 {native}")
    print("GEMM peak: best F.linear rate at a ViT-L MLP shape, measured around each run")
    with tempfile.TemporaryDirectory() as tmp:
        for modality in args.modalities.split(","):
            model_dir = write_tiny_checkpoint(
                Path(tmp) / modality, VARIANT_OF[modality], dims=VIT_L, weights_format="safetensors"
            )
            bench_modality(model_dir, modality, dtypes, args)
            shutil.rmtree(model_dir)  # ViT-L checkpoints are 1.7 GB each


def bench_modality(
    model_dir: Path,
    modality: str,
    dtypes: list[str],
    args: argparse.Namespace,
) -> None:
    """Time each dtype on the same seeded inputs; FLOPs counted once (fp32 graph)."""
    vectors: dict[str, torch.Tensor] = {}
    flops = 0.0
    for dtype in dtypes:
        encoder = lbsearch.load_encoder(modality, str(model_dir), device="cpu", dtype=dtype)
        batch = _batch_for(dtype, args.batch_size)
        generator = torch.Generator().manual_seed(0)
        pixels = torch.randn(batch, *encoder.input_shape, generator=generator)
        before = gemm_peak(getattr(torch, dtype), budget_s=2.0)
        rate, vectors[dtype] = timed_encode(encoder, pixels, args.budget_s, warm_up=batch > 1)
        # the machine may be shared: the ceiling is measured right around the run it bounds
        peak = max(before, gemm_peak(getattr(torch, dtype), budget_s=2.0))
        flops = flops or flops_per_item(encoder)
        print_row(Measurement(modality, dtype, batch, rate, flops, peak))
    if "float32" in vectors and len(vectors) > 1:
        for dtype, low in vectors.items():
            if dtype != "float32":
                cosine = (low * vectors["float32"][: len(low)]).sum(dim=1).min()
                print(
                    f"  {modality}: cosine({dtype}, float32) = {float(cosine):.5f} (min over {len(low)})"
                )
    if modality == "image":
        for dtype in dtypes:
            print(
                f"  text tower {dtype}: {text_per_second(model_dir, dtype, args.budget_s):.1f} texts/s"
            )


def _batch_for(dtype: str, batch_size: int) -> int:
    """Emulated bf16 (no AVX512-BF16/AMX) is ~50x slower than fp32: time one item, not a batch."""
    if dtype == "bfloat16" and not cpu_has_native_bf16():
        return 1
    return batch_size


def print_row(m: Measurement) -> None:
    share = m.gflops / m.peak_gflops if m.peak_gflops else 0.0
    print(
        f"{m.modality:8s} {m.dtype:9s} batch {m.batch_size:2d}: {m.items_per_s:7.3f} items/s, "
        f"{m.gflop_per_item:7.1f} GFLOP/item, {m.gflops:6.1f} GFLOP/s = {share:.2f} x GEMM peak "
        f"({m.peak_gflops:.0f})"
    )


if __name__ == "__main__":
    main()
