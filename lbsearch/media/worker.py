"""The decode worker process: one file at a time, its segments sent back in parts as they are made.

Wire protocol on the worker's pipe (the pool's side is in pool.py):
- worker -> pool: ("ready", pid) once (or ("fatal", detail) if it cannot decode at all), then per
  job any number of ("part", job_id, metas) followed by one ("ok", job_id, metas, seconds) or
  ("err", job_id, reason, detail, hint, seconds); a `WorkerTask` job (a thumbnail) answers
  ("ok", job_id, [], seconds, payload) with its bytes. `metas` lists (path, modality, start, end, shape) of the segments whose tensors follow
  as raw bytes, one `send_bytes` each (no pickling of pixel data).
- pool -> worker: (job_id, path, spec) per job (spec: a MediaSpec, or a WorkerTask to run);
  None to exit.

Memory: `media.max_worker_memory_mb` caps each worker's data (RLIMIT_DATA, set when it starts), so
a hostile file that makes a decoder allocate without bound fails with "out_of_memory" instead of
swapping the machine.

A part is sent once its tensors reach PART_BYTES, so a one-hour video crosses the pipe a few
windows at a time; while the pool does not read (its consumer is behind) the worker blocks on the
pipe, which bounds memory whatever the file's length.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import MediaError
from ..types import MediaSpec, Segment
from .reasons import media_error

if TYPE_CHECKING:
    import torch

PART_BYTES = 32 << 20  # ~6 video windows of 224 px, ~23 audio windows

DecodeFn = Callable[[Path, MediaSpec, Config], Iterable[Segment]]


class WorkerTask:
    """Work other than decoding that must stay out of the caller's process (a video's thumbnail
    for the web service): picklable, run in a worker with its limits, answers bytes."""

    def run(self, cfg: Config) -> bytes:
        raise NotImplementedError


def limit_memory(megabytes: int) -> None:
    """Cap this process's data segment (heap and anonymous mappings); 0 leaves it alone.

    RLIMIT_DATA rather than RLIMIT_AS: torch and FFmpeg reserve address space they never touch,
    which an address-space cap would count. An allocation past the cap fails (MemoryError in
    Python, an error code in FFmpeg) instead of the kernel swapping or OOM-killing."""
    import resource

    if megabytes <= 0:
        return
    cap = megabytes << 20
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))


def worker_main(conn: Connection, cfg: Config, threads: int, decode_fn: DecodeFn | None) -> None:
    """Worker loop: decode each (id, path, spec) received; stream its segments or its error."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import torch

        from .decode import decode_stream
    except Exception as exc:  # the pool stops with this as the reason (a broken pool)
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    run = decode_fn or decode_stream
    torch.set_num_threads(max(1, threads))
    limit_memory(cfg.media.max_worker_memory_mb)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, path, spec = message
        _run_job(conn, job_id, run, path, spec, cfg)


def _run_job(
    conn: Connection,
    job_id: int,
    run: DecodeFn,
    path: Path,
    spec: MediaSpec | WorkerTask,
    cfg: Config,
) -> None:
    started = time.monotonic()
    part: list[Segment] = []
    size = 0
    try:
        if isinstance(spec, WorkerTask):
            payload = spec.run(cfg)
            conn.send(("ok", job_id, [], time.monotonic() - started, payload))
            return
        for segment in run(path, spec, cfg):
            part.append(segment)
            size += segment.pixels.numel() * segment.pixels.element_size()
            if size >= PART_BYTES:
                _send(conn, ("part", job_id), part)
                part, size = [], 0
    except MediaError as exc:
        conn.send(("err", job_id, exc.reason, exc.detail, exc.hint, time.monotonic() - started))
        return
    except MemoryError as exc:  # past media.max_worker_memory_mb
        part = []  # frees what this file holds before the answer is built
        error = media_error(path, "out_of_memory", f"MemoryError: {exc}")
        conn.send(
            ("err", job_id, error.reason, error.detail, error.hint, time.monotonic() - started)
        )
        return
    except Exception as exc:  # decode maps everything; this is a last line of defence
        detail = f"{type(exc).__name__}: {exc}"
        conn.send(("err", job_id, "decode_error", detail, "", time.monotonic() - started))
        return
    _send(conn, ("ok", job_id), part, time.monotonic() - started)


def _send(conn: Connection, head: tuple[str, int], segments: list[Segment], *tail: Any) -> None:
    metas = [(s.path, s.modality, s.start_s, s.end_s, tuple(s.pixels.shape)) for s in segments]
    conn.send((*head, metas, *tail))
    for s in segments:
        conn.send_bytes(bytes_view(s.pixels.contiguous()))


def receive_segments(conn: Connection, metas: list[tuple[Any, ...]]) -> list[Segment]:
    """The segments announced by `metas`, their tensors read straight off the pipe."""
    import torch

    segments = []
    for path, modality, start, end, shape in metas:
        pixels = torch.empty(shape, dtype=torch.float32)
        conn.recv_bytes_into(bytes_view(pixels))
        segments.append(Segment(path, modality, start, end, pixels))
    return segments


def bytes_view(tensor: torch.Tensor) -> memoryview:
    """The tensor's memory as bytes (no copy): what the pipe sends and receives into."""
    array: Any = tensor.numpy()
    return memoryview(array).cast("B")
