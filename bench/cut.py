"""How long does `lbsearch cut` take for a 10 s moment of a long 1080p video? Stream copy (a key
frame at the start) against re-encoding (libx264 CRF 18 veryfast, through PyAV).

Generates a short textured 1080p H.264 piece with AAC sound once (a key frame every --gop
frames; moving noise, so the encoder has real work), makes the long file (1 h by default) by
joining copies of it with FFmpeg's concat demuxer and stream copy (PyAV's bundled FFmpeg: seconds,
where encoding an hour took too long), then cuts 10 s moments spread over the file, on and off a
key frame, and prints the wall time of each kind and their ratio.

    python bench/cut.py [--hours 1] [--piece 30] [--fps 25] [--gop 50] [--moment 10] [--keep FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
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


def concatenate(piece: Path, copies: int, out: Path) -> None:
    """`copies` of `piece` end to end in `out`: the concat demuxer, packets copied as they are
    (timestamps continue across the joins; key frames stay every --gop frames)."""
    import av

    listing = out.with_suffix(".txt")
    listing.write_text(f"file '{piece}'\n" * copies)
    try:
        with (
            av.open(str(listing), format="concat", options={"safe": "0"}) as joined,
            av.open(str(out), "w") as sink,
        ):
            streams = [*joined.streams.video[:1], *joined.streams.audio[:1]]
            outs = {s.index: sink.add_stream_from_template(s) for s in streams}
            last: dict[int, int] = {}
            for packet in joined.demux(*streams):
                index = packet.stream.index
                # at a join the sound's priming packet may step back in time: drop it
                if packet.dts is None or packet.dts <= last.get(index, -(2**62)):
                    continue
                last[index] = packet.dts
                packet.stream = outs[index]
                sink.mux(packet)
    finally:
        listing.unlink(missing_ok=True)


def long_video(args: argparse.Namespace, folder: Path) -> Path:
    """The long file: --keep if it exists, else a piece generated once and joined."""
    source = args.keep or folder / "long.mp4"
    if source.exists():
        return source
    piece = folder / "piece.mp4"
    began = time.perf_counter()
    make_video(piece, args.piece / 60, args.fps, args.gop)
    made = time.perf_counter() - began
    copies = max(1, round(args.hours * 3600 / args.piece))
    began = time.perf_counter()
    concatenate(piece, copies, source)
    joined = time.perf_counter() - began
    piece.unlink()
    print(
        f"generated {args.piece:g} s of 1080p{args.fps} in {made:.0f} s; joined {copies} copies "
        f"({copies * args.piece / 3600:g} h, {source.stat().st_size / 1e9:.1f} GB) in {joined:.0f} s"
    )
    return source


def time_cuts(source: Path, starts: list[float], moment: float, out_dir: Path) -> dict[str, list]:
    times: dict[str, list[float]] = {}
    for n, start in enumerate(starts):
        out = out_dir / f"clip{n}.mp4"
        began = time.perf_counter()
        result = cut(source, start, start + moment, out, force=True)
        took = time.perf_counter() - began
        times.setdefault(result.video or "none", []).append(took)
        print(f"  {start:7.1f} s: {result.video} in {took:.2f} s")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="length of the long video")
    parser.add_argument("--piece", type=float, default=30.0, help="seconds generated, then copied")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=50, help="frames between key frames")
    parser.add_argument("--moment", type=float, default=10.0, help="seconds per clip")
    parser.add_argument("--cuts", type=int, default=3, help="clips of each kind")
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = long_video(args, Path(tmp))
        key_s = args.gop / args.fps
        with av_duration(source) as length:
            span = length - args.moment - key_s
        keyed = [round(span * (k + 1) / (args.cuts + 1) / key_s) * key_s for k in range(args.cuts)]
        off = [s + 0.52 * key_s for s in keyed]
        times = time_cuts(source, keyed + off, args.moment, Path(tmp))
    medians = {}
    for kind, values in sorted(times.items()):
        label = "stream copy" if kind == "copy" else f"re-encode ({kind})"
        medians[kind] = statistics.median(values)
        print(
            f"{label}: {len(values)} clips of {args.moment:g} s, median "
            f"{medians[kind]:.2f} s, max {max(values):.2f} s"
        )
    if "copy" in medians and len(medians) > 1:
        other = max(v for k, v in medians.items() if k != "copy")
        print(f"re-encode / stream copy: {other / medians['copy']:.0f}x")


@contextlib.contextmanager
def av_duration(path: Path) -> Iterator[float]:
    """The file's length in seconds, as `cut` measures it."""
    from lbsearch.media.avio import open_container
    from lbsearch.media.clip import media_duration
    from lbsearch.media.fileio import open_media

    with open_media(path) as (handle, _), open_container(handle, path) as box:
        yield media_duration(box)


if __name__ == "__main__":
    main()
