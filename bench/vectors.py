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
from lbsearch.config import IndexConfig
from lbsearch.testing.vectors import clustered_vectors, recall_at_k
from lbsearch.types import Modality
from lbsearch.vectors.index import (
    IndexKind,
    IndexPlan,
    VectorIndex,
    default_nprobe,
    faiss_module,
    plan_index,
)
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


def bench_size(n: int, dim: int, queries: np.ndarray, folder: Path) -> None:
    data = clustered_vectors(n, dim)  # same clusters as the queries
    ids = np.arange(n, dtype=np.int64)
    config = IndexConfig(exact_max_segments=0)  # force the approximate kind at any size

    flat = VectorIndex.new(IndexPlan(IndexKind.FLAT), dim)
    start = time.perf_counter()
    flat.add(ids, data)
    flat_add = n / (time.perf_counter() - start)
    start = time.perf_counter()
    truth = flat.search(queries, 10).ids
    flat_batch = time.perf_counter() - start
    flat_p50, flat_p95 = latencies_ms(flat, queries, 0)

    plan = plan_index(n, dim, config)
    sample = data[np.random.default_rng(0).choice(n, plan.training_size(n), replace=False)]
    start = time.perf_counter()
    ann = VectorIndex.new(plan, dim, sample)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    ann.add(ids, data)
    ann_add = n / (time.perf_counter() - start)
    nprobe = default_nprobe(plan, config)
    start = time.perf_counter()
    found = ann.search(queries, 10, nprobe=nprobe).ids
    ann_batch = time.perf_counter() - start
    ann_p50, ann_p95 = latencies_ms(ann, queries, nprobe)

    nq = len(queries)
    print(f"\n{n:,} vectors x {dim}-d, {nq} queries, k=10")
    print(
        f"  {'index':<22}{'add/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'batch s':>9}{'recall':>8}{'B/seg':>8}"
    )
    rows = [
        ("flat (exact)", flat_add, flat_p50, flat_p95, flat_batch, 1.0, file_bytes(flat, folder)),
        (
            f"{plan.factory} np={nprobe}",
            ann_add,
            ann_p50,
            ann_p95,
            ann_batch,
            recall_at_k(found, truth),
            file_bytes(ann, folder),
        ),
    ]
    for name, add, p50, p95, batch, recall, size in rows:
        print(
            f"  {name:<22}{add:>10,.0f}{p50:>9.2f}{p95:>9.2f}{batch:>9.3f}{recall:>8.3f}"
            f"{size / n:>8.0f}"
        )
    print(f"  IVF training: {train_s:.1f} s on {plan.training_size(n):,} vectors")


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
            bench_size(n, args.dim, queries, Path(tmp))
        bench_catalog(args.dim, Path(tmp))


if __name__ == "__main__":
    main()
