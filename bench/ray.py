"""`lbsearch index --ray local` against the local pipeline, and the figures of the scale-out model.

1. Throughput on one folder (videos with sound tracks, and photos), indexed with the same random
   LanguageBind checkpoints by the local pipeline and by `--ray local`, interleaved (local, Ray,
   local, Ray...). "cold": each Ray run starts and stops its own local Ray (as
   `lbsearch index --ray local` does); "warm": Ray is already up (a running cluster), the run
   still starts its actors and loads the models. Target: Ray >= 0.8 of the local throughput.
   Ray's costs are per run and per segment, not per FLOP, so the ratio depends on how much
   encoding a segment costs: each `--towers` size (hidden width x layers) is a case. The
   default cases are 256x4, ~1/96 of a ViT-L tower's work per token (Ray's overhead
   at its largest), and 512x8, ~1/12 (still far lighter than the real towers).
2. Rates the model in docs/scale.md is built from, measured here: decode rate per core (video
   windows at two sizes, photos, audio windows; one process, one thread), the driver's catalog
   write rate (768-d segments committed per second), its content-hash rate, and the driver's
   cost per segment row coming back from Ray.
3. The model: N nodes x G GPUs, with the GPU encode rate from an ASSUMPTION (no GPU here): a
   ViT-L video window costs ~1,660 GFLOP; an H100/H200-class GPU sustains ~400 TFLOP/s fp16 on
   ViT-L batches (40% of its 989 TFLOP/s dense peak).

    python bench/ray.py [--videos 12] [--seconds 60] [--photos 72] [--towers 256x4 512x8]
                        [--repeats 1] [--doc docs/scale.md]

With --doc, the figures section of that file (between its bench markers) is rewritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from lbsearch.catalog import IndexedFile, NewSegment, hash_file
from lbsearch.config import Config, load_config
from lbsearch.embedder import open_embedder
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.indexers.ray import LanguageBindFactory, RayOptions, import_ray
from lbsearch.indexers.ray.rows import PartsCollector, TargetJob
from lbsearch.library import Library
from lbsearch.media import decode
from lbsearch.media.versions import preprocess_version
from lbsearch.testing.checkpoints import TinyDims, write_tiny_checkpoint
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_video
from lbsearch.types import Modality

GFLOP_PER_WINDOW = 1660.0  # ViT-L video window (issue 11)
GPU_TFLOPS = 400.0  # ASSUMED sustained fp16 on an H100/H200-class GPU (40% of 989 peak)
CORES_PER_GPU = 12  # ASSUMED: a typical cloud GPU node (e.g. 8 GPUs, 96 cores)
BEGIN, END = "<!-- bench/ray.py figures: begin -->", "<!-- bench/ray.py figures: end -->"


def small_models(root: Path, base: Config, hidden: int, layers: int) -> Config:
    """Random checkpoints for the image, video and audio towers, 224 px, `layers` deep."""
    dims = TinyDims(hidden, layers, 4 * hidden, 32, 2, 64, 4, 64, 224, 14, 8)
    paths = {
        m: write_tiny_checkpoint(root / v, v, dims=dims, weights_format="safetensors")
        for m, v in (("image", "image"), ("video", "video_ft"), ("audio", "audio_ft"))
    }
    models = dataclasses.replace(base.models, **{m: str(p) for m, p in paths.items()})
    runtime = dataclasses.replace(base.runtime, device="cpu", dtype="float32")
    return dataclasses.replace(base, models=models, runtime=runtime)


def write_folder(folder: Path, videos: int, seconds: float, photos: int) -> None:
    folder.mkdir(parents=True)
    for i in range(videos):
        write_video(folder / f"clip_{i}.mp4", seconds=seconds + i)
    rng = np.random.default_rng(0)
    for i in range(photos):
        pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{i:03d}.jpg", quality=85)


def timed_index(config: Config, folder: Path, library: Path, ray: RayOptions | None) -> float:
    """Segments embedded per second of wall time, for the whole run (start-up included)."""
    start = time.perf_counter()
    with Library.open(library, config=config, write=True) as lib:
        done = run_index([folder], lib, open_embedder(config), config, IndexOptions(ray=ray))
    assert done.counts.failed == 0, done
    return done.segments_embedded / (time.perf_counter() - start)


@dataclasses.dataclass(frozen=True)
class Towers:
    """A size of random checkpoint: `hidden` wide, `layers` deep (ViT-L: 1024 x 24)."""

    hidden: int
    layers: int

    @classmethod
    def parse(cls, text: str) -> Towers:
        hidden, layers = text.lower().split("x")
        return cls(int(hidden), int(layers))

    def __str__(self) -> str:
        return f"{self.hidden}x{self.layers}"

    def share_of_vit_l(self) -> float:
        """Work per token relative to ViT-L (weights ~ layers x width^2)."""
        return self.layers * self.hidden**2 / (24 * 1024**2)


def compare(config: Config, folder: Path, work: Path, repeats: int) -> dict[str, list[float]]:
    """Ratios Ray / local, each Ray run against the local run just before it."""
    ray = import_ray()
    cpus = os.cpu_count() or 2
    options = RayOptions(LanguageBindFactory(config), address="local", local_cpus=cpus)
    ratios: dict[str, list[float]] = {"ray cold": [], "ray warm": []}
    runs = 0

    def pair(name: str) -> None:
        nonlocal runs
        runs += 2
        local = timed_index(config, folder, work / f"lib{runs}", None)
        on_ray = timed_index(config, folder, work / f"lib{runs + 1}", options)
        ratios[name].append(on_ray / local)
        print(f"  local {local:6.2f}, {name} {on_ray:6.2f} segments/s: {on_ray / local:.2f}")

    for _ in range(repeats):
        pair("ray cold")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        for _ in range(repeats):
            pair("ray warm")
    finally:
        ray.shutdown()
    return ratios


def decode_rates(work: Path, config: Config) -> dict[str, float]:
    """Items decoded per second by one process (one thread), per kind of input."""
    import torch

    torch.set_num_threads(1)
    small = write_video(work / "small.mp4", seconds=40.0, size=(320, 240))
    hd = write_video(work / "hd.mp4", seconds=20.0, size=(1280, 720))
    photo = work / "photo.jpg"
    Image.fromarray(
        np.random.default_rng(1).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)
    ).save(photo)
    encoders = FakeEncoders(image_size=224)
    spec = {m: dataclasses.replace(encoders.media_spec(m), num_mel_bins=112) for m in Modality}
    cases = {
        "video windows 320x240 (10 s, 8 frames)": (small, spec[Modality.VIDEO]),
        "video windows 1280x720": (hd, spec[Modality.VIDEO]),
        "photos 4000x3000 JPEG": (photo, spec[Modality.IMAGE]),
        "audio windows (sound track)": (small, spec[Modality.AUDIO]),
    }
    rates = {}
    for name, (path, item_spec) in cases.items():
        decode(path, item_spec, config)  # warm caches and imports
        start, items = time.perf_counter(), 0
        while time.perf_counter() - start < 3.0:
            items += len(decode(path, item_spec, config))
        rates[name] = items / (time.perf_counter() - start)
    return rates


def catalog_write_rate(work: Path, config: Config, files: int = 2000, per_file: int = 6) -> float:
    """768-d segments committed per second: batches of 32 files, as the writer commits them."""
    fake = FakeEncoders(dim=768)
    rng = np.random.default_rng(2)
    rows = []
    for i in range(files):
        vectors = rng.standard_normal((per_file, 768)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        segments = tuple(
            NewSegment(Modality.VIDEO, 10.0 * k, 10.0 * k + 10, fake.model_id(Modality.VIDEO), v)
            for k, v in enumerate(vectors)
        )
        rows.append(IndexedFile(f"/m/v{i}.mp4", "/m", 1000, i, f"h{i}", Modality.VIDEO, segments))
    with Library.open(work / "writes", config=config, write=True) as lib:
        lib.set_modality(
            Modality.VIDEO,
            fake.model_id(Modality.VIDEO),
            preprocess_version(Modality.VIDEO, config),
        )
        start = time.perf_counter()
        for i in range(0, files, 32):
            lib.write_batch(rows[i : i + 32])
        seconds = time.perf_counter() - start
    return files * per_file / seconds


def hash_rate(work: Path) -> float:
    """MB/s of the content hash (file in the page cache: an upper bound for a network mount)."""
    path = work / "blob.bin"
    path.write_bytes(np.random.default_rng(3).bytes(256 * 2**20))
    hash_file(path)
    start = time.perf_counter()
    hash_file(path)
    return 256 / (time.perf_counter() - start)


def collector_rate(rows: int = 60000) -> float:
    """Segment rows per second the driver turns back into targets (Ray's transfer excluded)."""
    jobs = {k: TargetJob(k, f"/m/{k}.mp4", Modality.VIDEO) for k in range(rows // 6)}
    collector = PartsCollector(jobs, {Modality.VIDEO: "m"})
    vector = np.ones(768, np.float32)
    batch = [
        {"key": k, "part": 0, "parts": 1, "count": 6, "start": 10.0 * s, "end": 10.0 * s + 10}
        | {"vector": vector, "reason": "", "detail": "", "hint": "", "node": ""}
        for k in jobs
        for s in range(6)
    ]
    start = time.perf_counter()
    for row in batch:
        collector.add(row)
    return len(batch) / (time.perf_counter() - start)


def model_table(decode_per_core: float, write_rate: float) -> list[str]:
    """Windows/s of N nodes x G GPUs: the least of encode, decode and the driver's writes."""
    per_gpu = GPU_TFLOPS * 1000 / GFLOP_PER_WINDOW
    lines = [
        "| nodes x GPUs | encode (windows/s) | decode (windows/s) | driver writes (segments/s) "
        "| throughput | bound by |",
        "|---|---|---|---|---|---|",
    ]
    for nodes, gpus in ((1, 1), (1, 8), (4, 8), (16, 8), (64, 8), (256, 8)):
        encode = nodes * gpus * per_gpu
        dec = nodes * gpus * CORES_PER_GPU * decode_per_core
        limits = {"encode (GPUs)": encode, "decode (CPUs)": dec, "driver (SQLite)": write_rate}
        bound = min(limits, key=lambda k: limits[k])
        lines.append(
            f"| {nodes} x {gpus} | {encode:,.0f} | {dec:,.0f} | {write_rate:,.0f} "
            f"| {limits[bound]:,.0f} | {bound} |"
        )
    return lines


def report(
    args: argparse.Namespace,
    rates: dict[Towers, dict[str, list[float]]],
    measured: dict[str, float],
    load: float,
) -> list[str]:
    towers = " ".join(str(t) for t in rates)
    lines = [
        f"Measured by `python bench/ray.py --videos {args.videos} --seconds {args.seconds:g} "
        f"--photos {args.photos} --towers {towers} --repeats {args.repeats}` on this machine "
        f"({os.cpu_count()} cores, shared with other jobs; load average at start {load:.1f}).",
        "",
        "| towers (width x layers; share of ViT-L's work) | Ray cold / local | Ray warm / local |",
        "|---|---|---|",
    ]
    for size, runs in rates.items():
        cold, warm = (", ".join(f"{v:.2f}" for v in runs[k]) for k in ("ray cold", "ray warm"))
        lines.append(f"| {size} (1/{1 / size.share_of_vit_l():,.0f}) | {cold} | {warm} |")
    lines += ["", "| rate measured here | value |", "|---|---|"]
    lines += [f"| {name} | {value:,.1f} |" for name, value in measured.items()]
    per_gpu = GPU_TFLOPS * 1000 / GFLOP_PER_WINDOW
    lines += [
        "",
        f"ASSUMED (no GPU here): {GFLOP_PER_WINDOW:,.0f} GFLOP per ViT-L video window at "
        f"{GPU_TFLOPS:,.0f} TFLOP/s sustained fp16 = {per_gpu:,.0f} windows/s per GPU; "
        f"{CORES_PER_GPU} CPU cores per GPU.",
        "",
    ]
    decode_core = measured["decode per core: video windows 1280x720"]
    return lines + model_table(decode_core, measured["driver: catalog writes (768-d segments/s)"])


def write_doc(path: Path, lines: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--photos", type=int, default=72)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--towers",
        type=Towers.parse,
        nargs="+",
        default=[Towers(256, 4), Towers(512, 8)],
        help="checkpoint sizes, WIDTHxLAYERS (one comparison each)",
    )
    parser.add_argument("--doc", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    # this script is named like the `ray` package: its folder must not shadow it
    here = Path(__file__).parent.resolve()
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_folder(work / "media", args.videos, args.seconds, args.photos)
        print("throughput, segments embedded per second of wall time (start-up included):")
        base, rates = load_config(), {}
        for size in args.towers:
            print(f"towers {size}:")
            config = small_models(work / f"models-{size}", base, size.hidden, size.layers)
            (work / str(size)).mkdir()
            rates[size] = compare(config, work / "media", work / str(size), args.repeats)
        measured = {f"decode per core: {k}": v for k, v in decode_rates(work, base).items()}
        measured["driver: catalog writes (768-d segments/s)"] = catalog_write_rate(work, base)
        measured["driver: content hash (MB/s, page cache)"] = hash_rate(work)
        measured["driver: segment rows gathered (rows/s)"] = collector_rate()
    lines = report(args, rates, measured, load)
    print("\n".join(lines))
    if args.doc is not None:
        write_doc(args.doc, lines)


if __name__ == "__main__":
    main()
