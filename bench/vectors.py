"""Vector search benchmark: exact (flat) against approximate (IVF) search on clustered 768-d data.

    python bench/vectors.py [--sizes 10000 100000] [--queries 100] [--dim 768]

Prints, per collection size: add throughput, single-query latency p50/p95 over `--queries`
queries, the time for the same queries as one batch, recall@10 of the approximate index against
exact search, and the bytes one segment costs in the catalog and in each index file. The data
imitates real embeddings (lbsearch.testing.vectors); queries carry a modality gap like text.
Runs in about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from lbsearch.catalog import IndexedFile, NewSegment
from lbsearch.catalog.store import Catalog
from lbsearch.config import IndexConfig, RelevanceConfig
from lbsearch.testing.vectors import clustered_vectors, recall_at_k
from lbsearch.types import Modality
from lbsearch.vectors.bias import query_with_bias, segment_biases, with_bias
from lbsearch.vectors.index import VectorIndex, faiss_module
from lbsearch.vectors.plan import IndexKind, IndexPlan, default_nprobe, index_dim, plan_index
from lbsearch.vectors.store import IndexMeta, write_index_file


def latencies_ms(index: VectorIndex, queries: np.ndarray, nprobe: int) -> tuple[float, float]:
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search(q[None, :], 10, nprobe=nprobe)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def file_bytes(index: VectorIndex, folder: Path) -> int:
    path = folder / f"{index.plan.kind.value}.faiss"
    meta = IndexMeta(
        "bench", "image", 0, index.ntotal, index.dim, index.plan.kind.value, 0, 0, "", 0
    )
    write_index_file(path, index, meta)
    return path.stat().st_size


def biased(n: int, dim: int, queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Index rows [v, bias, 0...] as a library stores them (bias against a bank of 1,000
    text-like vectors, relevance defaults) and query rows [q, -alpha, 0...]."""
    relevance = RelevanceConfig()
    data = clustered_vectors(n, dim)  # same clusters as the queries
    bank = clustered_vectors(1000, dim, sample_seed=5, gap=1.0)
    rows = with_bias(data, segment_biases(bank, data, relevance.bank_k), width)
    return rows, query_with_bias(queries, relevance.alpha, width)


def bench_size(n: int, dim: int, queries: np.ndarray, folder: Path, sweep: bool) -> None:
    config = IndexConfig(exact_max_segments=0)  # force the approximate kind at any size
    plan = plan_index(n, dim, config)
    width = index_dim(plan, dim)
    rows, q = biased(n, dim, queries, width)
    ids = np.arange(n, dtype=np.int64)

    flat = VectorIndex.new(IndexPlan(IndexKind.FLAT), width)
    start = time.perf_counter()
    flat.add(ids, rows)
    flat_add = n / (time.perf_counter() - start)
    start = time.perf_counter()
    truth = flat.search(q, 10).ids
    flat_batch = time.perf_counter() - start
    flat_p50, flat_p95 = latencies_ms(flat, q, 0)

    nq = len(q)
    print(f"\n{n:,} vectors x {dim}-d (+ bias column: {width} wide), {nq} queries, k=10")
    print(
        f"  {'index':<24}{'add/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'batch s':>9}{'recall':>8}"
        f"{'B/seg':>8}"
    )
    size = file_bytes(flat, folder) / n
    print(
        f"  {'flat (exact)':<24}{flat_add:>10,.0f}{flat_p50:>9.2f}{flat_p95:>9.2f}"
        f"{flat_batch:>9.3f}{1.0:>8.3f}{size:>8.0f}"
    )
    del flat
    plans = [plan]
    if sweep and plan.kind is IndexKind.IVF:
        plans += [
            IndexPlan(IndexKind.IVF, plan.nlist * 2),
            IndexPlan(IndexKind.IVF, plan.nlist * 4),
        ]
    for candidate in plans:
        bench_plan(candidate, rows, q, truth, config, folder, sweep)


def bench_plan(
    plan: IndexPlan,
    rows: np.ndarray,
    q: np.ndarray,
    truth: np.ndarray,
    config: IndexConfig,
    folder: Path,
    sweep: bool,
) -> None:
    n = len(rows)
    ids = np.arange(n, dtype=np.int64)
    picked = np.random.default_rng(0).choice(n, plan.training_size(n), replace=False)
    start = time.perf_counter()
    ann = VectorIndex.new(plan, rows.shape[1], rows[np.sort(picked)])
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    ann.add(ids, rows)
    ann_add = n / (time.perf_counter() - start)
    size = file_bytes(ann, folder) / n
    default = default_nprobe(plan, config)
    probes = sorted({default, *((8, 16, 32, 64, 128) if sweep else ())} - {0})
    for nprobe in [p for p in probes if p <= plan.nlist]:
        start = time.perf_counter()
        found = ann.search(q, 10, nprobe=nprobe).ids
        batch = time.perf_counter() - start
        p50, p95 = latencies_ms(ann, q, nprobe)
        mark = "*" if nprobe == default else " "
        name = f"{plan.factory} np={nprobe}{mark}"
        print(
            f"  {name:<24}{ann_add:>10,.0f}{p50:>9.2f}{p95:>9.2f}{batch:>9.3f}"
            f"{recall_at_k(found, truth):>8.3f}{size:>8.0f}"
        )
    print(f"  {plan.factory} training: {train_s:.1f} s on {plan.training_size(n):,} vectors")


def bench_catalog(dim: int, folder: Path, n: int = 10_000) -> None:
    data = clustered_vectors(n, dim)
    with Catalog(folder / "catalog.sqlite", create=True) as catalog:
        catalog.set_modality(Modality.IMAGE, "bench", "1", dim)
        start = time.perf_counter()
        for lo in range(0, n, 64):
            catalog.write_batch(
                [
                    IndexedFile(
                        f"/photos/2024/holiday/IMG_{i:06d}.jpg",
                        "/photos",
                        3_500_000,
                        1_700_000_000_000_000_000 + i,
                        f"blake2b256:{i:064x}",
                        Modality.IMAGE,
                        (NewSegment(Modality.IMAGE, 0, 0, "bench", data[i]),),
                        width=4000,
                        height=3000,
                        model_id="bench",
                    )
                    for i in range(lo, min(lo + 64, n))
                ]
            )
        write_s = time.perf_counter() - start
        catalog.checkpoint()
        start = time.perf_counter()
        streamed = sum(len(c.ids) for c in catalog.stream_vectors(Modality.IMAGE))
        stream_s = time.perf_counter() - start
        size = catalog.size_on_disk()
    print(f"\ncatalog: {n:,} image files x 1 segment ({dim}-d), batches of 64")
    print(f"  write {n / write_s:,.0f} files/s, stream vectors back {streamed / stream_s:,.0f}/s")
    print(f"  {size / n:,.0f} bytes per segment (file row + segment row + float32 vector)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument(
        "--sweep", action="store_true", help="also nprobe 8-128 and 2x, 4x the planned nlist"
    )
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads (0: all cores)")
    args = parser.parse_args()
    faiss = faiss_module(IndexConfig(threads=args.threads))
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, "
        f"blas threshold {faiss.cvar.distance_compute_blas_threshold}, "
        f"{os.cpu_count()} cores{load}"
    )
    queries = clustered_vectors(args.queries, args.dim, sample_seed=99, gap=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            bench_size(n, args.dim, queries, Path(tmp), args.sweep)
        bench_catalog(args.dim, Path(tmp))


if __name__ == "__main__":
    main()
