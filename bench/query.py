"""Query latency benchmark: `lbsearch query` cold (a new process) and the warm engine (the TUI).

    python bench/query.py [--sizes 10000 100000] [--queries 50] [--cold-runs 5] [--text-size tiny]

For each size, a library of that many 768-d segments (clustered like real embeddings,
lbsearch.testing.vectors) is written through Library.write_batch: images (1 segment a file),
videos (10) and audio (5), every modality registered with one random LanguageBind checkpoint
whose text tower is tiny (`--text-size real`: ViT-L text dimensions, 12 layers x 768) and whose
projection gives 768-d vectors, so text queries run the real path: text tower -> FAISS per
modality -> roll-up -> merge. Prints p50/p95 of:

- warm: SearchEngine.search on an open library with the encoder loaded, new text each query;
  `encode` is the part spent in the text tower, `search` the rest, split into `index` (FAISS,
  the index rows), `catalog` (SQL, records) and `engine` (ranking, hits, moments) time
  (bench/querysplit.py); `--compare-with REV` also times git revision REV's warm search in
  child processes, rounds interleaved with this tree's, and prints the ratios;
- calibrated against raw cosine (`--order score`: alpha 0, ranked by cosine), interleaved in
  the same run, warm (one engine, query by query in turn) and cold (per back-end, run by run):
  p50/p95 of each and the ratio of the p50s (issue 17's target: within 5%);
- warm under load: the same, while `lbsearch index` runs on the same cores in another process
  (a CPU-bound indexer re-indexing a folder of generated pictures with a mid-size tower, at the
  niceness `[index] nice` gives it, 10 by default), and its ratio to the quiet p50;
- cold: `lbsearch query TEXT --json` as a subprocess (Python start, imports, library open,
  text tower load, search, output): first while `lbsearch serve` runs on the library (the
  query asks it over the local socket) against --no-server, interleaved run by run, and their
  ratio, with the server's own time per answer (its log) and so the client process's share; then per back-end of the text tower (ONNX Runtime, torch), runs interleaved; plus the
  phases of one cold query measured in a child (the text tower opened as `query` opens it), and
  whether torch and transformers were imported. `--cold-only`: the first and the phases alone
  (about a minute at 10k segments).

About 3-5 minutes on 2 cores with the defaults (the first ONNX export of the text tower is
done before timing and reported).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The warm engine runs as `browse` and `serve` run it (cli/query.py quiet_idle_threads): idle
# OpenMP threads sleep. Set before faiss loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from querysplit import PHASES, PhaseClock, interleaved, median, unpack_revision

from lbsearch.catalog import IndexedFile, NewSegment
from lbsearch.config import load_config
from lbsearch.embedder import Encoding, LanguageBindEmbedder, open_embedder
from lbsearch.library import Library
from lbsearch.search import Query, SearchEngine, Term
from lbsearch.search.calibration import install_banks
from lbsearch.testing.checkpoints import TinyDims, write_tiny_checkpoint
from lbsearch.testing.vectors import clustered_vectors
from lbsearch.types import MediaSpec, Modality, Segment

DIM = 768
LAYOUT = ((Modality.IMAGE, 0.5, 1), (Modality.VIDEO, 0.3, 10), (Modality.AUDIO, 0.2, 5))
ORDERS = ("relevance", "score")  # calibrated, raw cosine (--order score)
WORDS = ("dog", "cat", "beach", "sunset", "car", "city", "night", "rain", "music", "snow")


def texts(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=3)) + f" {i}" for i in range(count)]


def write_checkpoint(folder: Path, size: str, variant: str = "image") -> Path:
    """A random checkpoint of `variant` whose text tower is tiny or ViT-L-sized (`size`); the
    text weights depend only on the dims, so every variant written here shares one text tower."""
    dims = TinyDims(projection=DIM)
    if size == "real":
        dims = TinyDims(text_hidden=768, text_layers=12, text_mlp=3072, projection=DIM)
    suffix = "" if variant == "image" else f"-{variant}"
    return write_tiny_checkpoint(folder / f"bench-{size}{suffix}", variant, dims=dims)


def write_config(
    folder: Path,
    checkpoint: Path,
    exact_max: int | None = None,
    models: Mapping[Modality, Path] | None = None,
) -> Path:
    """config.toml with `checkpoint` for every modality, but those `models` names."""
    path = folder / "config.toml"
    chosen = {m: (models or {}).get(m, checkpoint) for m in Modality}
    lines = ["[models]"] + [f'{m.value} = "{chosen[m]}"' for m in Modality]
    lines += ["[runtime]", 'device = "cpu"', 'dtype = "float32"']
    if exact_max is not None:
        lines += ["[index]", f"exact_max_segments = {exact_max}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def build_library(
    root: Path,
    segments: int,
    model_id: str,
    config_path: Path,
    models: Mapping[Modality, Path] | None = None,
) -> float:
    """Write `segments` segments through Library.write_batch with the relevance bank
    installed as `lbsearch index` does (before the writes, so each segment gets its bias
    column as it is added, and again at the end); returns seconds taken. Each modality is
    registered with `model_id`, or its checkpoint in `models`."""
    start = time.perf_counter()
    vectors = clustered_vectors(segments, DIM, seed=7)
    rng = np.random.default_rng(3)
    done = 0
    config = load_config(config_path)
    ids = {m: str((models or {}).get(m, model_id)) for m in Modality}
    encoders = open_embedder(config, models=ids)
    with Library.open(root, write=True, config=config) as lib:
        for modality, _, _ in LAYOUT:
            lib.set_modality(modality, ids[modality], "1", DIM)
        install_banks(lib, encoders, config.relevance)
        for modality, share, per_file in LAYOUT:
            files = int(segments * share) // per_file
            batch: list[IndexedFile] = []
            for i in range(files):
                rows = vectors[done : done + per_file]
                done += per_file
                batch.append(_file(modality, i, rows, per_file, ids[modality], rng))
                if len(batch) == 256:
                    lib.write_batch(batch)
                    batch = []
            if batch:
                lib.write_batch(batch)
        install_banks(lib, encoders, config.relevance)
    return time.perf_counter() - start


def _file(
    modality: Modality,
    i: int,
    rows: np.ndarray,
    per_file: int,
    model_id: str,
    rng: np.random.Generator,
) -> IndexedFile:
    span = 0.0 if per_file == 1 else 10.0
    ext = {Modality.IMAGE: "jpg", Modality.VIDEO: "mp4", Modality.AUDIO: "flac"}[modality]
    segments = tuple(
        NewSegment(modality, j * span, (j + 1) * span, model_id, rows[j]) for j in range(per_file)
    )
    return IndexedFile(
        path=f"/media/{modality.value}/{i // 1000:03d}/file_{i:06d}.{ext}",
        root="/media",
        size=int(rng.integers(10_000, 50_000_000)),
        mtime_ns=1_700_000_000_000_000_000 + i * 1_000_000_000,
        content_hash=f"{modality.value}:{i:060x}",
        modality=modality,
        segments=segments,
        duration_s=span * per_file or None,
    )


class TimedEncoders:
    """An embedder with the seconds spent encoding texts recorded."""

    def __init__(self, inner: LanguageBindEmbedder) -> None:
        self.inner = inner
        self.encode_s = 0.0

    def model_id(self, modality: Modality) -> str:
        return self.inner.model_id(modality)

    def encoding(self, modality: Modality) -> Encoding:
        return self.inner.encoding(modality)

    def media_spec(self, modality: Modality) -> MediaSpec:
        return self.inner.media_spec(modality)

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        return self.inner.embed_segments(modality, segments)

    def embed_texts(self, modality: Modality, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.embed_texts(modality, texts)
        finally:
            self.encode_s += time.perf_counter() - start


def warm(
    library: Path, config_path: Path, queries: int, backend: str = "auto", order: str = "relevance"
) -> dict[str, tuple[float, float]]:
    """p50/p95 of warm searches; order "relevance" is the calibrated default (FAISS scores
    cosine - alpha x bias, then each modality's null), "score" raw cosine (alpha 0)."""
    samples = warm_samples(library, config_path, queries, backend, order)
    return {name: _pct(values) for name, values in samples.items()}


def warm_samples(
    library: Path,
    config_path: Path,
    queries: int,
    backend: str = "auto",
    order: str = "relevance",
    seed: int = 0,
) -> dict[str, list[float]]:
    """Seconds of each warm search: total, encode (the text tower), search (the rest) and the
    search's parts (bench/querysplit.py: index, catalog, engine)."""
    config = load_config(config_path)
    samples: dict[str, list[float]] = {"total": [], "encode": [], "search": []}
    with Library.open(library, config=config) as lib:
        models = {m: s.model_id for m, s in lib.catalog.modality_states().items()}
        timed = TimedEncoders(open_embedder(config, models=models, backend=backend))
        engine = SearchEngine(lib, config, timed)
        engine.search(Query((Term("warm up"),)))  # loads the tower and the indices
        clock = PhaseClock()
        clock.instrument(lib)
        for text in texts(queries, seed=seed):
            timed.encode_s = 0.0
            clock.take(0.0)
            start = time.perf_counter()
            hits = engine.search(Query((Term(text),), limit=20, order=order))
            total = time.perf_counter() - start
            samples["total"].append(total)
            samples["encode"].append(timed.encode_s)
            samples["search"].append(total - timed.encode_s)
            for phase, spent in clock.take(total - timed.encode_s).items():
                samples.setdefault(phase, []).append(spent)
            assert len(hits) == 20
    return samples


def compare_warm(library: Path, config_path: Path, args: argparse.Namespace, tmp: Path) -> None:
    """The warm search of this tree against revision `args.compare_with`, rounds interleaved
    in child processes on the same library; p50s and their ratio (this / the revision)."""
    codes = {"this tree": None, args.compare_with: unpack_revision(args.compare_with, tmp)}
    per_round = max(5, args.queries // args.rounds)
    samples = interleaved(
        codes,
        lambda r: [str(library), str(config_path), str(per_round), "relevance", str(r)],
        args.rounds,
    )
    mine, theirs = samples["this tree"], samples[args.compare_with]
    print(f"  warm, this tree vs {args.compare_with} ({args.rounds} rounds each, interleaved):")
    for measure in ("total", "search", *PHASES):
        a, b = median(mine[measure]) * 1000, median(theirs[measure]) * 1000
        print(f"    {measure:<8} p50 {a:>8.2f} vs {b:>8.2f} ms: {a / b:.2f}x")


def warm_calibration(
    library: Path, config_path: Path, queries: int, backend: str = "auto"
) -> dict[str, tuple[float, float]]:
    """Warm p50/p95 of calibrated searches ("relevance": FAISS scores cosine - alpha x bias,
    then each modality's null) and raw ones ("score": alpha 0, ranked by cosine) on one engine,
    query by query in turn (which goes first alternates), each with texts of its own (no
    encoding reused): a busy moment of the machine hits both alike."""
    config = load_config(config_path)
    samples: dict[str, list[float]] = {"relevance": [], "score": []}
    with Library.open(library, config=config) as lib:
        models = {m: s.model_id for m, s in lib.catalog.modality_states().items()}
        engine = SearchEngine(lib, config, open_embedder(config, models=models, backend=backend))
        for order in samples:
            engine.search(Query((Term(f"warm up {order}"),), order=order))  # tower, indices
        pairs = zip(texts(queries, seed=10), texts(queries, seed=11), strict=True)
        for i, (mine, other) in enumerate(pairs):
            turns = [("relevance", mine), ("score", other)]
            for order, text in turns if i % 2 == 0 else turns[::-1]:
                start = time.perf_counter()
                hits = engine.search(Query((Term(text),), limit=20, order=order))
                samples[order].append(time.perf_counter() - start)
                assert len(hits) == 20
    return {order: _pct(values) for order, values in samples.items()}


def cold(library: Path, config_path: Path, runs: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Cold CLI queries per text back-end and order (calibrated "relevance", raw "score"),
    interleaved (the order of the four alternates each run) so a busy moment hits all alike."""
    times: dict[tuple[str, str], list[float]] = {
        (backend, order): [] for backend in ("onnxruntime", "torch") for order in ORDERS
    }
    for i, text in enumerate(texts(runs, seed=99)):
        for backend, order in list(times) if i % 2 == 0 else list(times)[::-1]:
            times[backend, order].append(_cold_once(library, config_path, text, backend, order))
    return {key: _pct(spent) for key, spent in times.items()}


def _cold_once(
    library: Path,
    config_path: Path,
    text: str,
    backend: str,
    order: str,
    *flags: str,
) -> float:
    """One `lbsearch query` process; `flags`: more options (default --no-server: in-process)."""
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lbsearch",
            "--config",
            str(config_path),
            "query",
            text,
            "--library",
            str(library),
            "--backend",
            backend,
            "--order",
            order,
            "--all",
            "--json",
            *(flags or ("--no-server",)),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode != 0 or len(done.stdout.splitlines()) != 20:
        raise SystemExit(f"lbsearch query failed ({done.returncode}): {done.stderr}")
    return time.perf_counter() - start


def cold_with_server(library: Path, config_path: Path, runs: int) -> dict[str, tuple[float, float]]:
    """Cold `lbsearch query` processes while `lbsearch serve` runs on the library (asked over
    its local socket) and with --no-server (searched in-process), interleaved run by run."""
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "lbsearch", "--config", str(config_path), "serve"),
            *("--library", str(library), "--port", "0", "--backend", "onnxruntime"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    times: dict[str, list[float]] = {"server": [], "no server": []}
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if line.startswith("open "):
                break
        for _ in range(2):  # the server's text tower opens at its first query
            _cold_once(library, config_path, "warm up", "onnxruntime", "relevance", "--json")
        for i, text in enumerate(texts(runs, seed=77)):
            for how in list(times) if i % 2 == 0 else list(times)[::-1]:
                flags = ("--json",) if how == "server" else ()
                spent = _cold_once(library, config_path, text, "onnxruntime", "relevance", *flags)
                times[how].append(spent)
    finally:
        server.send_signal(signal.SIGINT)
        rest = server.communicate(timeout=60)[1]
    answered = rest.count("local socket: query")
    if answered != runs + 2:
        print(f"  (the server answered {answered} of {runs + 2} queries; the rest ran locally)")
    found = {how: _pct(spent) for how, spent in times.items()}
    # the server logs its own time for each answer: the rest of a served query is the client's
    took = [
        float(ms) / 1000 for ms in re.findall(r"local socket: query \d+ results (\d+) ms", rest)
    ]
    if len(took) > 2:
        found["its answer"] = _pct(took[2:])  # after the two warm-up queries
    return found


COLD_PHASES = """
import json, sys, time
t0 = time.perf_counter()
from lbsearch.cli.main import build_app
build_app("query")  # what `lbsearch query` imports before it runs
tc = time.perf_counter()
import numpy
from lbsearch.config import load_config
from lbsearch.library import Library
from lbsearch.embedder import open_embedder
from lbsearch.search import Query, SearchEngine, Term
import lbsearch.catalog.store, lbsearch.library.core, lbsearch.search.engine  # loaded lazily
import faiss
t1 = time.perf_counter()
config = load_config(sys.argv[1])
with Library.open(sys.argv[2], config=config, mapped=True) as lib:  # as query opens it
    models = {m: s.model_id for m, s in lib.catalog.modality_states().items()}
    enc = open_embedder(config, models=models, backend=sys.argv[3], quick_start=True)  # as query
    engine = SearchEngine(lib, config, enc)
    for m in engine.indexed_modalities():
        lib.index_size(m)  # loads the index
    t2 = time.perf_counter()
    enc.embed_texts(engine.indexed_modalities()[0], ["warm"])
    t3 = time.perf_counter()
    enc.embed_texts(engine.indexed_modalities()[0], ["a dog on a beach"])
    t4 = time.perf_counter()
    engine.search(Query((Term("a dog on a beach"),)))
    t5 = time.perf_counter()
print(json.dumps({"CLI imports": tc - t0, "core imports": t1 - tc, "open + load indices": t2 - t1,
                  "load text tower": t3 - t2, "encode text": t4 - t3, "search": t5 - t4,
                  "torch imported": "torch" in sys.modules,
                  "transformers imported": "transformers" in sys.modules}))
"""


def cold_phases(library: Path, config_path: Path, backend: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", COLD_PHASES, str(config_path), str(library), backend],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


INDEXER_DIMS = TinyDims(vision_hidden=384, vision_layers=6, vision_mlp=1536, projection=DIM)


def start_indexer(folder: Path) -> subprocess.Popen[bytes]:
    """`lbsearch index` in a loop on generated pictures with a mid-size tower: a CPU-bound
    indexer on the same cores as the queries (each pass indexes into a fresh library)."""
    from PIL import Image

    media = folder / "indexer-media"
    media.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(200):
        pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(media / f"p{i:03d}.jpg")
    checkpoint = write_tiny_checkpoint(folder / "indexer-model", "image", dims=INDEXER_DIMS)
    config = write_config(folder / "indexer-model", checkpoint)
    script = (
        "import subprocess, sys, shutil\n"
        "n = 0\n"
        "while True:\n"
        "    lib = sys.argv[3] + str(n % 2); shutil.rmtree(lib, ignore_errors=True); n += 1\n"
        "    subprocess.run([sys.executable, '-m', 'lbsearch', '--config', sys.argv[1], 'index',"
        " sys.argv[2], '--library', lib], capture_output=True)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(config), str(media), str(folder / "indexer-lib")]
    )


def warm_under_load(library: Path, config_path: Path, queries: int, folder: Path) -> float:
    """Warm p50 (ms) while an indexer holds the cores."""
    indexer = start_indexer(folder)
    try:
        time.sleep(8)  # past the indexer's start-up, into encoding
        return warm(library, config_path, queries)["total"][0]
    finally:
        indexer.kill()
        indexer.wait()


def _print_calibration(what: str, pair: dict[str, tuple[float, float]]) -> None:
    """Calibrated against raw cosine, measured interleaved in this run: p50/p95 and the ratio
    of the p50s (the target: within 5%)."""
    (cal50, cal95), (raw50, raw95) = pair["relevance"], pair["score"]
    print(
        f"  {what}, interleaved: calibrated {cal50:.1f}/{cal95:.1f} ms, raw cosine (--order "
        f"score) {raw50:.1f}/{raw95:.1f} ms p50/p95: calibrated/raw p50 {cal50 / raw50:.3f}x"
    )


def _pct(values: list[float]) -> tuple[float, float]:
    ms = np.asarray(values) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--text-size", choices=["tiny", "real"], default="real")
    parser.add_argument(
        "--exact-max", type=int, help="[index] exact_max_segments (default: the config's)"
    )
    parser.add_argument(
        "--warm-only", action="store_true", help="only the quiet warm figures (no load, no cold)"
    )
    parser.add_argument(
        "--cold-only",
        action="store_true",
        help="only the cold CLI with and without a running server, and its phases",
    )
    parser.add_argument(
        "--compare-with",
        metavar="REV",
        help="also the warm search of git revision REV, interleaved, and the ratios",
    )
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per code")
    parser.add_argument("--warm-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_child:  # LIBRARY CONFIG QUERIES ORDER SEED, from compare_warm
        lib, cfg, count, order, seed = args.warm_child
        found = warm_samples(Path(lib), Path(cfg), int(count), order=order, seed=int(seed))
        print(json.dumps(found))
        return
    with tempfile.TemporaryDirectory(prefix="lbsearch-bench-") as tmp:
        folder = Path(tmp)
        checkpoint = write_checkpoint(folder, args.text_size)
        config_path = write_config(folder, checkpoint, args.exact_max)
        load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
        print(
            f"text tower: {args.text_size}; {DIM}-d vectors; {os.cpu_count()} CPUs{load}; "
            f"exact search up to {args.exact_max or 'the configured'} segments; ms p50/p95"
        )
        for size in args.sizes:
            report(folder, size, checkpoint, config_path, args)


def report(
    folder: Path, size: int, checkpoint: Path, config_path: Path, args: argparse.Namespace
) -> None:
    library = folder / f"lib-{size}"
    build_s = build_library(library, size, str(checkpoint), config_path)
    print(f"\n{size:,} segments (written with the relevance bank in {build_s:.0f} s)")
    first = time.perf_counter()
    cold_phases(library, config_path, "onnxruntime")  # the one-off export, not timed below
    print(
        f"  first run with the ONNX text tower (export included): {time.perf_counter() - first:.1f} s"
    )
    if args.cold_only:
        _report_cold(library, config_path, args)
        return
    quiet = warm(library, config_path, args.queries)
    for name, (p50, p95) in quiet.items():
        print(f"  warm engine {name:<8}{p50:>9.1f}{p95:>9.1f}  calibrated")
    pair = warm_calibration(library, config_path, args.queries)
    _print_calibration(f"warm engine ({args.queries} queries each)", pair)
    if args.compare_with:
        compare_warm(library, config_path, args, folder)
    if args.warm_only:
        return
    loaded = warm_under_load(library, config_path, args.queries, folder)
    ratio = loaded / quiet["total"][0]
    print(f"  warm engine under an indexer: p50 {loaded:.1f} ({ratio:.2f}x quiet)")
    _report_cold(library, config_path, args)


def _report_cold(library: Path, config_path: Path, args: argparse.Namespace) -> None:
    """Cold CLI: with and without a running server, then (unless --cold-only) per back-end
    and order; the phases of one cold query."""
    served = cold_with_server(library, config_path, args.cold_runs)
    ratio = served["server"][0] / served["no server"][0]
    for how in ("server", "no server"):
        p50, p95 = served[how]
        print(f"  cold CLI onnxruntime, {how:<9}{p50:>9.1f}{p95:>9.1f}  ({args.cold_runs} runs)")
    if "its answer" in served:  # the phase split of a served query
        p50, p95 = served["its answer"]
        client = served["server"][0] - p50
        print(
            f"  served: the server's own answer{p50:>9.1f}{p95:>9.1f}, the client process "
            f"(start, imports, socket, output) the rest: {client:.0f} ms p50"
        )
    print(f"  cold CLI with a running server / without, p50: {ratio:.2f}x")
    if args.cold_only:
        _print_phases(library, config_path, ("onnxruntime",))
        return
    times = cold(library, config_path, args.cold_runs)
    for backend in ("onnxruntime", "torch"):
        pair = {order: times[backend, order] for order in ORDERS}
        _print_calibration(f"cold CLI {backend} ({args.cold_runs} runs each)", pair)
    _print_phases(library, config_path, ("onnxruntime", "torch"))


def _print_phases(library: Path, config_path: Path, backends: tuple[str, ...]) -> None:
    for backend in backends:
        phases = cold_phases(library, config_path, backend)
        shown = [
            f"{k} {v * 1000:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in phases.items()
        ]
        print(f"  cold phases ({backend}): " + ", ".join(shown))


if __name__ == "__main__":
    main()
