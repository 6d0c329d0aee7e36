"""How long does `lbsearch cut` take for a 10 s moment of a long 1080p video? Stream copy (a key
frame at the start) against re-encoding (libx264 CRF 18 veryfast, through PyAV).

Generates a textured 1080p H.264 video with AAC sound (a key frame every --gop frames; moving
noise, so the encoder has real work), then cuts 10 s moments spread over the file, on and off a
key frame, and prints the wall time of each kind. The file's length matters only through the
seek, which reads the MP4 index, so a few minutes stand in for an hour.

    python bench/cut.py [--minutes 5] [--fps 25] [--gop 50] [--moment 10] [--keep FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lbsearch.media.clip import cut


def make_video(path: Path, minutes: float, fps: int, gop: int) -> None:
    import av

    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (1144 // 8, 1984 // 8, 3), dtype=np.uint8)
    # 8x8 blocks of noise moving over the frame: camera-like bit rates (about 10-20 Mbit/s)
    texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
    rate = 48000
    with av.open(str(path), "w") as box:
        video: Any = box.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 1920, 1080, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "28", "keyint_min": str(gop)}
        video.codec_context.gop_size = gop
        audio: Any = box.add_stream("aac", rate=rate, layout="stereo")
        per_frame = rate // fps
        for i in range(round(minutes * 60 * fps)):
            dx, dy = (i * 3) % 64, (i * 2) % 64
            picture = texture[dy : dy + 1080, dx : dx + 1920]
            box.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            t = (i * per_frame + np.arange(per_frame)) / rate
            tone = (0.3 * np.sin(2 * np.pi * (220 + 20 * (i // (10 * fps))) * t)).astype("f4")
            sound = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]), format="fltp", layout="stereo"
            )
            sound.sample_rate, sound.pts, sound.time_base = rate, i * per_frame, Fraction(1, rate)
            box.mux(audio.encode(sound))
        box.mux(video.encode(None))
        box.mux(audio.encode(None))


def time_cuts(source: Path, starts: list[float], moment: float, out_dir: Path) -> dict[str, list]:
    times: dict[str, list[float]] = {}
    for n, start in enumerate(starts):
        out = out_dir / f"clip{n}.mp4"
        began = time.perf_counter()
        result = cut(source, start, start + moment, out, force=True)
        times.setdefault(result.video or "none", []).append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the test video")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=50, help="frames between key frames")
    parser.add_argument("--moment", type=float, default=10.0, help="seconds per clip")
    parser.add_argument("--cuts", type=int, default=4, help="clips of each kind")
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.keep or Path(tmp) / "long.mp4"
        if not source.exists():
            began = time.perf_counter()
            make_video(source, args.minutes, args.fps, args.gop)
            print(
                f"generated {args.minutes:g} min of 1080p{args.fps} in "
                f"{time.perf_counter() - began:.0f} s ({source.stat().st_size / 1e6:.0f} MB)"
            )
        key_s = args.gop / args.fps
        span = args.minutes * 60 - args.moment - key_s
        keyed = [round(span * (k + 1) / (args.cuts + 1) / key_s) * key_s for k in range(args.cuts)]
        off = [s + 0.52 * key_s for s in keyed]
        times = time_cuts(source, keyed + off, args.moment, Path(tmp))
    for kind, values in sorted(times.items()):
        label = "stream copy" if kind == "copy" else f"re-encode ({kind})"
        print(
            f"{label}: {len(values)} clips of {args.moment:g} s, median "
            f"{statistics.median(values):.2f} s, max {max(values):.2f} s"
        )


if __name__ == "__main__":
    main()
