"""Can decoding keep the encoder fed? Decode rate against encode rate, in media seconds per second.

Generates H.264 videos (with AAC sound) at two sizes and FLAC audio, decodes them in-process and
through the DecodePool (the indexer's decode stage), then times a ViT-L-sized random encoder on
the same kind of segments. Prints, per modality, media-seconds/s for both and their ratio:
a ratio above 1 means decoding outruns the encoder.

    python bench/media.py [--seconds 60] [--encoder-batch 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import lbsearch
from lbsearch.config import Config, load_config
from lbsearch.media.pool import default_workers
from lbsearch.media.throughput import measure_throughput
from lbsearch.testing.checkpoints import VIT_L, write_tiny_checkpoint
from lbsearch.testing.samples import write_audio, write_video
from lbsearch.types import MediaSpec, Modality


def encoder_media_rate(
    model_dir: Path, modality: str, seconds_per_item: float, batch: int
) -> float:
    """Media seconds the encoder consumes per wall second (fp32, CPU, one batch after warm-up)."""
    encoder = lbsearch.load_encoder(modality, str(model_dir), device="cpu", dtype="float32")
    pixels = torch.randn(batch, *encoder.input_shape)
    encoder.encode(pixels[:1])
    start = time.perf_counter()
    encoder.encode(pixels)
    return batch * seconds_per_item / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each test file")
    parser.add_argument("--encoder-batch", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config()
    workers = cfg.media.decode_workers or default_workers()
    print(f"{torch.get_num_threads()} torch threads, {workers} decode worker(s)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos = {
            "video 640x360": write_video(root / "v360.mp4", args.seconds, 30, (640, 360)),
            "video 1280x720": write_video(root / "v720.mp4", args.seconds, 30, (1280, 720)),
        }
        audio = write_audio(root / "a.flac", args.seconds, 440.0)
        video_spec, audio_spec = MediaSpec(Modality.VIDEO), MediaSpec(Modality.AUDIO)
        video_dir = write_tiny_checkpoint(
            root / "video", "video_ft", dims=VIT_L, weights_format="safetensors"
        )
        audio_dir = write_tiny_checkpoint(
            root / "audio", "audio_ft", dims=VIT_L, weights_format="safetensors"
        )
        video_rate = encoder_media_rate(
            video_dir, "video", cfg.video.segment_seconds, args.encoder_batch
        )
        audio_rate = encoder_media_rate(audio_dir, "audio", 10.36, args.encoder_batch)
        for name, path in videos.items():
            report(name, [path], video_spec, cfg, workers, video_rate)
        report("audio flac", [audio], audio_spec, cfg, workers, audio_rate)
        report("video sound track", [videos["video 640x360"]], audio_spec, cfg, workers, audio_rate)


def report(
    name: str,
    paths: list[Path],
    spec: MediaSpec,
    cfg: Config,
    workers: int,
    encoder_rate: float,
) -> None:
    alone = measure_throughput(paths, spec, cfg, workers=0)
    pooled = measure_throughput(paths, spec, cfg, workers=workers, repeats=2)
    ratio = pooled.media_seconds_per_second / encoder_rate
    print(
        f"{name:18s} decode {alone.media_seconds_per_second:7.1f} s/s in-process, "
        f"{pooled.media_seconds_per_second:7.1f} s/s pooled | ViT-L encoder {encoder_rate:6.2f} s/s "
        f"| decode/encode = {ratio:6.1f}x"
    )


if __name__ == "__main__":
    main()
