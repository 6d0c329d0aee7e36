"""Indexing speed: the whole pipeline against the encoder alone, re-run cost, bytes per segment.

1. End to end: `run_index` over generated JPEG photos with a ViT-L-sized random image model,
   against the same encoder on the same (pre-decoded) inputs in the same run. The goal is a
   ratio >= 0.9: walking, hashing, decoding and writing hidden behind the encoder.
2. No-change re-run over 10,000 files already in the catalog (walk + stat + catalog lookups).
3. Catalog + index bytes per segment (768-d vectors).

    python bench/index.py [--images 24] [--files 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lbsearch.catalog import IndexedFile, NewSegment, hash_file
from lbsearch.config import Config, load_config
from lbsearch.embedder import open_embedder
from lbsearch.indexers.pipeline import modality_recipe, run_index
from lbsearch.library import Library
from lbsearch.media import decode
from lbsearch.testing.checkpoints import VIT_L, write_tiny_checkpoint
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.types import Modality


def write_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        path = folder / f"photo_{i:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=85)
        paths.append(path)
    return paths


def encoder_alone(config: Config, photos: list[Path]) -> float:
    """Images/s of the encoder on pre-decoded inputs, batched as the pipeline batches them."""
    encoders = open_embedder(config)
    spec = encoders.media_spec(Modality.IMAGE)
    segments = [decode(p, spec, config)[0] for p in photos]
    batch = config.runtime.batch_size or 32
    encoders.embed_segments(
        Modality.IMAGE, segments[:1]
    )  # load + warm up, as the pipeline's first batch
    start = time.perf_counter()
    for i in range(0, len(segments), batch):
        encoders.embed_segments(Modality.IMAGE, segments[i : i + batch])
    return len(segments) / (time.perf_counter() - start)


def end_to_end(config: Config, photos: Path, library: Path) -> float:
    encoders = open_embedder(config)
    encoders.embed_segments(
        Modality.IMAGE, decode(next(photos.iterdir()), encoders.media_spec(Modality.IMAGE), config)
    )
    with Library.open(library, config=config, write=True) as lib:
        start = time.perf_counter()
        done = run_index([photos], lib, encoders, config)
        seconds = time.perf_counter() - start
    return done.segments_embedded / seconds


def no_change_rerun(config: Config, folder: Path, library: Path, count: int) -> tuple[float, float]:
    """Seconds for a re-run over `count` unchanged files, and bytes per segment of the library."""
    folder.mkdir(parents=True)
    fake = FakeEncoders(dim=768)
    rng = np.random.default_rng(1)
    with Library.open(library, config=config, write=True) as lib:
        for m in Modality:
            lib.set_modality(m, fake.model_id(m), modality_recipe(m, fake, config))
        rows = []
        for i in range(count):
            path = folder / f"f{i:05d}.jpg"
            path.write_bytes(i.to_bytes(4, "little"))
            st = path.stat()
            vector = rng.standard_normal(768).astype(np.float32)
            segment = NewSegment(
                Modality.IMAGE,
                0.0,
                0.0,
                fake.model_id(Modality.IMAGE),
                vector / np.linalg.norm(vector),
            )
            rows.append(
                IndexedFile(
                    str(path),
                    str(folder),
                    st.st_size,
                    st.st_mtime_ns,
                    hash_file(path),
                    Modality.IMAGE,
                    (segment,),
                )
            )
            if len(rows) == 1000 or i == count - 1:
                lib.write_batch(rows)
                rows = []
    with Library.open(library, config=config, write=True) as lib:
        start = time.perf_counter()
        done = run_index([folder], lib, fake, config)
        seconds = time.perf_counter() - start
        assert done.counts.unchanged == count, done.counts
        assert sum(fake.calls.values()) == 0, fake.calls
        stats = lib.stats()
    return seconds, stats.total_bytes / max(1, stats.catalog.segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    base = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = write_tiny_checkpoint(
            root / "vitl", "image", dims=VIT_L, weights_format="safetensors"
        )
        config = dataclasses.replace(
            base, models=dataclasses.replace(base.models, image=str(model))
        )
        photos = write_photos(root / "photos", args.images)
        alone = encoder_alone(config, photos)
        pipeline = end_to_end(config, root / "photos", root / "library")
        print(
            f"torch threads {torch.get_num_threads()}, batch {config.runtime.batch_size}, {args.images} photos 640x480"
        )
        print(
            f"encoder alone: {alone:.3f} images/s; whole pipeline: {pipeline:.3f} images/s; ratio {pipeline / alone:.2f}"
        )
        seconds, per_segment = no_change_rerun(config, root / "many", root / "library2", args.files)
        print(
            f"no-change re-run over {args.files} files: {seconds:.2f} s ({args.files / seconds:.0f} files/s)"
        )
        print(f"catalog + index bytes per segment (768-d): {per_segment:.0f}")


if __name__ == "__main__":
    main()
