"""`lbsearch serve` latency: warm GET /api/search over HTTP, quiet and while an indexer writes.

    python bench/serve.py [--sizes 10000 100000] [--queries 60] [--text-size tiny]
                          [--backend torch]

For each size, a library of 768-d segments is built as bench/query.py builds it (clustered
vectors; images, videos and audio; one random checkpoint with a tiny text tower, so every query
runs the real path: text tower -> FAISS per modality -> roll-up -> merge -> JSON). Then
`lbsearch serve` runs as its own process on 127.0.0.1 and is asked over HTTP, a new text each
query (no text cache hits). Printed, in ms p50/p95:

- quiet: GET /api/search, interleaved query by query with the same search on an in-process
  engine (no HTTP) on the same library; the ratio is what the service adds;
- indexing: GET /api/search while another process commits a batch of 64 new files (the way
  `lbsearch index` writes) every 0.5 s, so the service keeps reloading; the ratio is against
  quiet. (The writer spends no CPU on encoders: on 2 cores a real index run also competes for
  the CPU with its decoders and towers.)

With `--load SECONDS` (issue 15's figures), also, as ratios from the same run:

- 20 concurrent clients for SECONDS (each a loop of new texts): throughput against one client
  alone for the same time, p50/p95/p99, errors;
- the same while a 121-megapixel PNG and a 10-minute video are posted as examples (in turns,
  for the whole period), with the server's RSS (its peak over its start of period);
- the share of searches answered while 200 slow clients each hold a connection (a POST whose
  body trickles in a byte every 2 s). All clients come from 127.0.0.1 here, so the server runs
  with `[serve] max_client_connections = 512` (the default, a quarter of the connections per
  address, would rightly turn the 129th slow client away and the searches with it).

A few minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

# Idle OpenMP threads sleep (as in `lbsearch query`): this process and the server share the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).parent))
from query import DIM, build_library, texts, write_checkpoint, write_config

from lbsearch.catalog import IndexedFile, NewSegment
from lbsearch.config import load_config
from lbsearch.library import Library
from lbsearch.search import Query, SearchEngine, Term
from lbsearch.types import Modality

TIMED = (Modality.VIDEO, Modality.AUDIO)

WRITER = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
from serve import new_files
from lbsearch.library import Library
library, model, stop = sys.argv[1], sys.argv[2], sys.argv[4]
with Library.open(library, write=True) as lib:
    print("ready", flush=True)
    batch = 0
    while not __import__("os").path.exists(stop):
        lib.write_batch(new_files(batch, model))
        batch += 1
        if batch % 4 == 0:
            lib.save()
        time.sleep(0.5)
    print(batch, flush=True)
"""


def new_files(batch: int, model_id: str, count: int = 64) -> list[IndexedFile]:
    """`count` new one-segment pictures for the writer's `batch`-th commit."""
    rng = np.random.default_rng(1000 + batch)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        IndexedFile(
            path=f"/media/new/{batch:05d}/file_{i:03d}.jpg",
            root="/media",
            size=100_000 + i,
            mtime_ns=1_800_000_000_000_000_000 + batch * 1000 + i,
            content_hash=f"new:{batch:05d}:{i:03d}",
            modality=Modality.IMAGE,
            segments=(NewSegment(Modality.IMAGE, 0.0, 0.0, model_id, vectors[i]),),
        )
        for i in range(count)
    ]


class Server:
    """`lbsearch serve` in a child process; its stderr is collected in a thread."""

    def __init__(self, library: Path, config_path: Path, backend: str) -> None:
        command = [sys.executable, "-m", "lbsearch", "--config", str(config_path), "serve"]
        command += ["--backend", backend]
        self.process = subprocess.Popen(
            [*command, "--library", str(library), "--port", "0"],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        self.lines: list[str] = []
        found = threading.Event()
        self.base = ""

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                match = re.search(r"open (http://\S+?)/\s", line)
                if match:
                    self.base = match.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(300):
            raise SystemExit("lbsearch serve did not start:\n" + "".join(self.lines))

    def server_ms(self, first: int) -> list[float]:
        """Milliseconds the server itself logged for each search after line `first`."""
        found = [re.search(r"GET /api/search 200 \d+ B ([\d.]+) ms", x) for x in self.lines[first:]]
        return [float(m.group(1)) / 1000 for m in found if m]

    def reloads(self) -> int:
        return sum("reloaded the library" in line for line in self.lines)

    def stop(self) -> None:
        self.process.send_signal(2)
        self.process.wait(60)


def _get(http: httpx.Client, text: str) -> float:
    start = time.perf_counter()
    response = http.get("/api/search", params={"q": text, "limit": 20})
    elapsed = time.perf_counter() - start
    if response.status_code != 200 or not response.json()["results"]:  # the cut-off may trim
        raise SystemExit(f"search failed: {response.status_code} {response.text[:300]}")
    return elapsed


def quiet(
    http: httpx.Client, engine: SearchEngine, queries: int
) -> tuple[list[float], list[float]]:
    """HTTP and in-process searches, alternating query by query."""
    over_http, in_process = [], []
    for i, text in enumerate(texts(2 * queries, seed=11)):
        if i % 2 == 0:
            over_http.append(_get(http, text))
        else:
            start = time.perf_counter()
            engine.search(Query((Term(text),), limit=20))
            in_process.append(time.perf_counter() - start)
    return over_http, in_process


def while_indexing(
    http: httpx.Client, library: Path, model_id: str, queries: int, folder: Path
) -> tuple[list[float], int]:
    stop = folder / "stop-writer"
    stop.unlink(missing_ok=True)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(library),
            model_id,
            str(Path(__file__).parent),
            str(stop),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    writer.stdout.readline()  # "ready": the library is open for writing
    time.sleep(1.0)  # the first commits land
    times = [_get(http, text) for text in texts(queries, seed=23)]
    stop.touch()
    out = writer.stdout.read()
    writer.wait(120)
    if writer.returncode != 0:
        raise SystemExit(f"the writer failed ({writer.returncode})")
    return times, int(out.strip())


def _clients(base: str, clients: int, seconds: float, seed: int) -> tuple[list[float], int]:
    """`clients` threads searching new texts back to back for `seconds`: latencies, errors."""
    times: list[float] = []
    errors = [0]
    words = texts(20_000, seed=seed)
    end = time.monotonic() + seconds

    def run(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = offset
            while time.monotonic() < end:
                start = time.perf_counter()
                try:
                    ok = http.get("/api/search", params={"q": words[i % len(words)]}).is_success
                except httpx.HTTPError:
                    ok = False
                if ok:
                    times.append(time.perf_counter() - start)
                else:
                    errors[0] += 1
                i += clients

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, errors[0]


def _rss_mb(pid: int) -> float:
    with Path(f"/proc/{pid}/status").open() as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _uploads(base: str, files: list[Path], stop: threading.Event, codes: list[int]) -> None:
    """Post the example files in turns until `stop` (each waits for its answer)."""
    with httpx.Client(base_url=base, timeout=600) as http:
        while not stop.is_set():
            for path in files:
                with path.open("rb") as handle:
                    response = http.post("/api/search", files={"like": (path.name, handle)})
                codes.append(response.status_code)
                if stop.is_set():
                    return


def _slow_clients(base: str, count: int, stop: threading.Event) -> None:
    import socket

    host, port = base.split("://", 1)[1].rsplit(":", 1)
    head = (
        f"POST /api/search HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    held: list[socket.socket] = []
    while not stop.is_set():
        while len(held) < count:  # the body deadline closes them: come back, as an attacker would
            try:
                sock = socket.create_connection((host, int(port)), timeout=5)
                sock.sendall(head)
                held.append(sock)
            except OSError:
                break
        time.sleep(2)
        for sock in list(held):
            try:
                sock.sendall(b"a")
            except OSError:
                held.remove(sock)
                sock.close()
    for sock in held:
        sock.close()


def own_towers(folder: Path, text_size: str = "") -> dict[Modality, Path]:
    """Video and audio checkpoints of their own (the same text tower as the image one), so an
    uploaded video is decoded and embedded as a video; written once, when `text_size` is given."""
    if text_size:
        for variant in ("video_ft", "audio_ft"):
            write_checkpoint(folder, text_size, variant)
    found = {m: next(folder.glob(f"bench-*-{m.value}_ft"), None) for m in TIMED}
    return {m: path for m, path in found.items() if path is not None}


def _examples(folder: Path) -> list[Path]:
    from PIL import Image

    from lbsearch.testing.samples import write_video

    big = folder / "big-121mp.png"
    if not big.exists():
        Image.new("RGB", (11000, 11000), (30, 60, 90)).save(big, optimize=True)
    video = folder / "ten-minutes.mp4"
    if not video.exists():
        write_video(video, seconds=600.0)
    return [big, video]


def load(server: Server, folder: Path, seconds: float) -> None:
    """Issue 15's figures (see the module's doc)."""
    one, one_err = _clients(server.base, 1, seconds, seed=31)
    many, many_err = _clients(server.base, 20, seconds, seed=37)
    _row("1 client", one, one_err, seconds)
    _row("20 clients", many, many_err, seconds)
    files = _examples(folder)
    stop, peak = threading.Event(), [0.0]
    codes: list[int] = []
    before = _rss_mb(server.process.pid)

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb(server.process.pid))
            time.sleep(0.2)

    helpers = [
        threading.Thread(target=_uploads, args=(server.base, files, stop, codes)),
        threading.Thread(target=sample),
    ]
    for thread in helpers:
        thread.start()
    busy, busy_err = _clients(server.base, 20, seconds, seed=41)
    stop.set()
    for thread in helpers:
        thread.join()
    _row("20 clients, uploads", busy, busy_err, seconds)
    print(
        f"  uploads answered {codes}; server RSS {before:.0f} MB -> peak {peak[0]:.0f} MB "
        f"(+{peak[0] - before:.0f})"
    )
    print(
        f"  ratios: 20 clients / 1 client throughput {len(many) / max(1, len(one)):.2f}, "
        f"p99/p50 {_p(many, 99) / _p(many, 50):.2f}, "
        f"uploads / quiet throughput {len(busy) / max(1, len(many)):.2f}"
    )
    stop = threading.Event()
    attack = threading.Thread(target=_slow_clients, args=(server.base, 200, stop))
    attack.start()
    time.sleep(3)
    answered, failed = _clients(server.base, 1, seconds, seed=43)
    stop.set()
    attack.join()
    share = len(answered) / max(1, len(answered) + failed)
    print(f"  200 slow clients: {share:.1%} of {len(answered) + failed} searches answered")


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def _row(name: str, values: list[float], errors: int, seconds: float) -> None:
    print(
        f"  {name:<22} {len(values) / seconds:7.1f}/s  p50 {_p(values, 50):7.1f}  "
        f"p95 {_p(values, 95):7.1f}  p99 {_p(values, 99):7.1f}  errors {errors}"
    )


def _pct(values: list[float]) -> tuple[float, float]:
    ms = np.asarray(values) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def bench_size(
    size: int,
    folder: Path,
    config_path: Path,
    checkpoint: Path,
    queries: int,
    backend: str,
    load_s: float = 0.0,
) -> None:
    from lbsearch.cli.query import make_encoders, quiet_idle_threads

    quiet_idle_threads()
    library = folder / f"lib-{size}"
    build_s = build_library(library, size, str(checkpoint), config_path, own_towers(folder))
    print(f"\n{size:,} segments (written in {build_s:.0f} s)")
    server = Server(library, config_path, backend)
    config = load_config(config_path)
    try:
        with (
            httpx.Client(base_url=server.base, timeout=60) as http,
            Library.open(library, config=config) as lib,
        ):
            engine = SearchEngine(lib, config, make_encoders(lib, config, None, None, backend))
            engine.search(Query((Term("warm up"),)))
            _get(http, "warm up")
            mark = len(server.lines)
            over_http, in_process = quiet(http, engine, queries)
            served = server.server_ms(mark)
            busy, batches = while_indexing(http, library, str(checkpoint), queries, folder)
        rows = [
            ("quiet, in-process engine", in_process),
            ("quiet, GET /api/search", over_http),
            ("  (as the server logs it)", served),
            ("indexing, GET /api/search", busy),
        ]
        for name, values in rows:
            p50, p95 = _pct(values)
            print(f"  {name:<28}{p50:>9.1f}{p95:>9.1f}")
        base = _pct(over_http)[0]
        print(
            f"  ratios (p50): HTTP / in-process {base / _pct(in_process)[0]:.2f}, "
            f"indexing / quiet {_pct(busy)[0] / base:.2f}; "
            f"{batches} batches of 64 files committed, {server.reloads()} reloads"
        )
        if load_s:
            load(server, folder, load_s)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--text-size", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--backend", choices=["torch", "onnxruntime", "auto"], default="torch")
    parser.add_argument("--load", type=float, default=0.0, help="seconds per load phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbsearch-bench-serve-") as tmp:
        folder = Path(tmp)
        checkpoint = write_checkpoint(folder, args.text_size)
        config_path = write_config(folder, checkpoint, models=own_towers(folder, args.text_size))
        if args.load:  # every client is 127.0.0.1 here (see the module's doc)
            with config_path.open("a") as out:
                out.write("[serve]\nmax_client_connections = 512\n")
        print(
            f"text tower: {args.text_size} on {args.backend}; {DIM}-d vectors; "
            f"{os.cpu_count()} CPUs; ms p50/p95"
        )
        for size in args.sizes:
            bench_size(size, folder, config_path, checkpoint, args.queries, args.backend, args.load)


if __name__ == "__main__":
    main()
