"""Decode throughput, for the benchmark script: media seconds (or files) decoded per second."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..types import MediaSpec, Segment
from .decode import decode
from .pool import DecodeJob, DecodePool


@dataclass(frozen=True)
class Throughput:
    files: int
    failed: int
    segments: int
    media_seconds: float  # summed duration of the decoded files (end of their last segment)
    wall_seconds: float
    reasons: dict[str, int] = field(default_factory=dict)  # failures by reason code

    @property
    def media_seconds_per_second(self) -> float:
        return self.media_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def files_per_second(self) -> float:
        return self.files / self.wall_seconds if self.wall_seconds > 0 else 0.0


def measure_throughput(
    paths: Sequence[Path], spec: MediaSpec, cfg: Config, workers: int = 0, repeats: int = 1
) -> Throughput:
    """Decode `paths` (`repeats` times) and time it.

    workers > 0: through a DecodePool of that many processes, timed after the workers have
    started (steady-state throughput of the indexing pipeline's decode stage).
    workers == 0: in this process, one file after another (pure decoder speed, no transfer).
    """
    jobs = [DecodeJob(Path(p), spec) for p in paths for _ in range(max(1, repeats))]
    if workers <= 0:
        return _timed(jobs, cfg, None)
    with DecodePool(cfg, workers=workers) as pool:
        list(pool.imap(jobs[:workers]))  # warm-up: start the workers, import torch and PyAV
        return _timed(jobs, cfg, pool)


def _timed(jobs: list[DecodeJob], cfg: Config, pool: DecodePool | None) -> Throughput:
    failed, segments, media = 0, 0, 0.0
    reasons: dict[str, int] = {}
    started = time.perf_counter()
    for _job, segs, error in _run(jobs, cfg, pool):
        if error is not None:
            failed += 1
            reasons[error] = reasons.get(error, 0) + 1
            continue
        segments += len(segs)
        media += max((s.end_s for s in segs), default=0.0)
    wall = time.perf_counter() - started
    return Throughput(len(jobs), failed, segments, media, wall, reasons)


def _run(
    jobs: list[DecodeJob], cfg: Config, pool: DecodePool | None
) -> Iterator[tuple[DecodeJob, list[Segment], str | None]]:
    from ..errors import MediaError

    if pool is not None:
        for result in pool.imap(jobs):
            yield result.job, result.segments, result.error.reason if result.error else None
        return
    for job in jobs:
        try:
            yield job, decode(job.path, job.spec, cfg), None
        except MediaError as exc:
            yield job, [], exc.reason
