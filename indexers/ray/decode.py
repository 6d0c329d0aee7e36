"""The decode stage, run in Ray worker processes: rows in, segment rows out.

Each worker keeps one `DecodePool` of a single process, so a file still decodes under the
per-file time limit and in isolation (a hang or a crash in FFmpeg becomes `decode_timeout` or
`decoder_crashed`, as in a local run). Reason codes come back as rows, never as exceptions: Ray
retries only what is a real fault (a worker or node lost).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import math
import socket
from pathlib import Path
from typing import Any

import numpy as np

from lbsearch.config import Config
from lbsearch.media.pool import DecodeJob, DecodePool
from lbsearch.media.ranges import PartSpec, decode_part, split_ranges
from lbsearch.types import MediaSpec

from .rows import (
    COUNT,
    DETAIL,
    END,
    FROM_S,
    HINT,
    NODE,
    PART,
    PARTS,
    PATH,
    PIXELS,
    REASON,
    START,
    TO_S,
)

_POOLS: dict[Config, DecodePool] = {}


def split_parts(row: dict[str, Any], part_seconds: float) -> list[dict[str, Any]]:
    """A video's row -> one row per part of about `part_seconds` (from its header)."""
    ranges = split_ranges(Path(row[PATH]), part_seconds)
    return [
        {**row, PART: k, PARTS: len(ranges), FROM_S: a, TO_S: b} for k, (a, b) in enumerate(ranges)
    ]


def decode_rows(row: dict[str, Any], spec: MediaSpec, cfg: Config) -> list[dict[str, Any]]:
    """One part of one file -> its segment rows, or one status row (failed, or no window)."""
    part_spec = spec
    if int(row[PARTS]) > 1:
        part_spec = PartSpec(**dataclasses.asdict(spec), from_s=row[FROM_S], to_s=row[TO_S])
    with contextlib.closing(_pool(cfg).imap([DecodeJob(Path(row[PATH]), part_spec)])) as results:
        result = next(results)
    base = {k: row[k] for k in row if k not in (FROM_S, TO_S)}
    status = {**base, COUNT: 0, START: 0.0, END: 0.0, PIXELS: _EMPTY, NODE: socket.gethostname()}
    if result.error is not None:
        error = result.error
        return [{**status, REASON: error.reason, DETAIL: error.detail, HINT: error.hint}]
    if not result.segments:
        return [{**status, REASON: "", DETAIL: "", HINT: ""}]
    count = len(result.segments)
    return [
        {
            **status,
            COUNT: count,
            START: s.start_s,
            END: s.end_s,
            PIXELS: s.pixels.numpy(),
            REASON: "",
            DETAIL: "",
            HINT: "",
        }
        for s in result.segments
    ]


_EMPTY = np.zeros(0, dtype=np.float32)


def _pool(cfg: Config) -> DecodePool:
    """This worker's decode process (started once, closed when the worker exits)."""
    pool = _POOLS.get(cfg)
    if pool is None:
        pool = _POOLS[cfg] = DecodePool(cfg, workers=1, prefetch=0, decode_fn=decode_part)
        atexit.register(pool.close)
    return pool


def can_read(path: str) -> tuple[str, str]:
    """(this node's host name, "" or what stops it from reading `path`)."""
    host = socket.gethostname()
    try:
        with Path(path).open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return host, f"{type(exc).__name__}: {exc.strerror or exc}"
    return host, ""


def part_seconds(cfg: Config, windows: int) -> float:
    """Length of a part of a long video; math.inf (no parts) when parts cannot be exact."""
    if cfg.video.backend != "pyav" or cfg.video.segment_seconds <= 0:
        return math.inf  # parts decode with PyAV's frame numbering only
    return cfg.video.segment_seconds * max(1, windows)
