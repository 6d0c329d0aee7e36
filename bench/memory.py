"""Peak memory of indexing a long video against a short one: windows must stream, not pile up.

Generates two low-resolution videos with a sound track (one minute and one hour by default),
indexes each into a fresh library in its own process with the fake encoder at the real input size
(224 px: 4.8 MB per video window, as the LanguageBind video tower gets), and samples the resident
memory of that process and all its children (forkserver, decode workers) from /proc. The two runs
alternate (short, long, short, long) and the best of each is kept.

Goal: the one-hour video's peak stays within ~1 GB of the one-minute video's (before streaming,
all 360 windows of an hour, ~1.7 GB, came back from the decode worker at once).

    python bench/memory.py [--short 60] [--long 3600] [--repeats 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

CHILD = """
import sys
from pathlib import Path
from lbsearch.config import load_config
from lbsearch.indexers.pipeline import run_index
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders

if __name__ == "__main__":
    config = load_config()
    with Library.open(Path(sys.argv[1]), config=config, write=True) as lib:
        done = run_index([Path(sys.argv[2])], lib, FakeEncoders(image_size=224), config)
    print(done.counts.added, done.segments_embedded)
"""


def write_video(path: Path, seconds: int, fps: int = 1, size: tuple[int, int] = (64, 48)) -> Path:
    """A cheap long video: `fps` frames a second of moving noise, plus a 16 kHz mono tone."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as box:
        video = box.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "35"}
        audio = box.add_stream("aac", rate=16000, layout="mono")
        block = 16000
        for second in range(seconds):
            t = (np.arange(block) + second * block) / 16000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 16000, second * block
            for packet in audio.encode(frame):
                box.mux(packet)
            for _ in range(fps):
                pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                    box.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                box.mux(packet)
    return path


def _children(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += parents.get(current, [])
    return tree


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def index_peak(video_dir: Path, library: Path, script: Path) -> tuple[int, float, str]:
    """Peak resident bytes of the indexing process tree, seconds taken, and its output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(script), str(library), str(video_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(_rss(p) for p in _children(process.pid)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"indexing failed ({process.returncode})")
    return peak, time.perf_counter() - started, output.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=60, help="seconds of the short video")
    parser.add_argument("--long", type=int, default=3600, help="seconds of the long video")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "index_one.py"
        script.write_text(CHILD)
        made = time.perf_counter()
        cases = {
            "short": write_video(root / "short" / "clip.mp4", args.short),
            "long": write_video(root / "long" / "clip.mp4", args.long),
        }
        print(f"videos written in {time.perf_counter() - made:.0f} s")
        peaks: dict[str, list[int]] = {name: [] for name in cases}
        for repeat in range(args.repeats):
            for name, video in cases.items():
                library = root / f"lib-{name}-{repeat}"
                peak, seconds, output = index_peak(video.parent, library, script)
                peaks[name].append(peak)
                print(
                    f"{name} ({video.stat().st_size / 1e6:.1f} MB file): peak {peak / 2**20:.0f} MiB"
                    f" in {seconds:.1f} s; added, segments embedded: {output}"
                )
        short, long_ = min(peaks["short"]), min(peaks["long"])
        print(
            f"peak RSS (process tree): {args.short} s video {short / 2**20:.0f} MiB, "
            f"{args.long} s video {long_ / 2**20:.0f} MiB; "
            f"difference {(long_ - short) / 2**20:.0f} MiB (goal: under ~1024)"
        )


if __name__ == "__main__":
    main()
