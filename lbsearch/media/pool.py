"""DecodePool: files decoded in worker processes, with a time limit per file, results streamed.

Why processes: FFmpeg and Pillow can hang or crash on hostile files, and a thread can be neither
killed nor isolated. Each worker owns a pipe; the pool's dispatcher thread (not the caller's)
hands out jobs, reads results as soon as they are ready, kills a worker whose file overruns
`media.decode_timeout_s` (the file becomes a `decode_timeout` result) and starts a fresh one.
A worker that dies (segfault, OOM kill) gives `decoder_crashed` for its file. Results come back in
completion order; at most `workers + prefetch` files are decoded or waiting at any time, so a
slow consumer (the encoder) holds decoding back instead of filling memory.

Transfer is cheap: tensors travel as raw bytes (`send_bytes`) and are received straight into
freshly allocated tensors (`recv_bytes_into`), with no pickling of pixel data.

Workers start with forkserver (spawn off Linux), so a script that creates a pool must guard its
entry point with `if __name__ == "__main__":`, as for any multiprocessing code.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import MediaError
from ..types import MediaSpec, Segment
from .reasons import media_error

if TYPE_CHECKING:
    import torch

_POLL_S = 0.05  # dispatcher wake-up when it waits for the consumer to make room
_MAX_START_FAILURES = 3  # workers dying before they are ready: the pool itself is broken
_JOIN_S = 2.0


@dataclass(frozen=True)
class DecodeJob:
    """One file to decode for one encoder; `tag` is the caller's, returned untouched."""

    path: Path
    spec: MediaSpec
    tag: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class DecodeResult:
    job: DecodeJob
    segments: list[Segment]
    error: MediaError | None
    seconds: float  # wall time of the decode (in the worker; up to the kill for a timeout)

    @property
    def ok(self) -> bool:
        return self.error is None


class PoolBrokenError(RuntimeError):
    """Workers cannot even start (e.g. the environment lacks a dependency)."""


DecodeFn = Callable[[Path, MediaSpec, Config], list[Segment]]


class _Worker:
    def __init__(self, ctx: Any, cfg: Config, threads: int, decode_fn: DecodeFn | None) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child, cfg, threads, decode_fn),
            daemon=True,
            name="lbsearch-decode",
        )
        self.proc.start()
        child.close()
        self.ready = False
        self.job: tuple[int, DecodeJob] | None = None
        self.started = 0.0

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(_JOIN_S)
        self.conn.close()


class DecodePool:
    """A bounded pool of decoding worker processes; use as a context manager."""

    def __init__(
        self,
        cfg: Config,
        workers: int = 0,
        timeout_s: float | None = None,
        prefetch: int | None = None,
        torch_threads: int = 1,
        decode_fn: DecodeFn | None = None,
    ) -> None:
        """`workers` 0: media.decode_workers (0 there: half the CPUs). `timeout_s` None:
        media.decode_timeout_s (0 disables). `prefetch`: finished results allowed to wait for
        the consumer (default: one per worker). `decode_fn`: a picklable top-level function
        replacing `decode` in the workers (tests, custom decoders)."""
        self.cfg = cfg
        self.workers = workers or cfg.media.decode_workers or default_workers()
        self.timeout_s = cfg.media.decode_timeout_s if timeout_s is None else timeout_s
        self.capacity = self.workers + (self.workers if prefetch is None else max(0, prefetch))
        self._threads = torch_threads
        self._decode_fn = decode_fn
        self._ctx = _context()
        self._pool: list[_Worker] = []
        self._next_id = 0
        self._active: tuple[threading.Thread, threading.Event] | None = None
        self._closed = False

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def imap(self, jobs: Iterable[DecodeJob]) -> Generator[DecodeResult, None, None]:
        """Decode `jobs`, yielding results in completion order as files finish.

        `jobs` is read lazily on the pool's dispatcher thread, one job per free slot, so it
        should be cheap to advance (a slow walk delays time-limit checks). Leaving the loop early
        (break, exception) abandons the files still being decoded. One imap at a time per pool.
        """
        if self._closed:
            raise RuntimeError("DecodePool is closed")
        if self._active is not None:
            raise RuntimeError("DecodePool runs one imap at a time")
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        thread = threading.Thread(target=self._dispatch, args=(iter(jobs), out, stop), daemon=True)
        self._active = (thread, stop)
        thread.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop_active()

    def _stop_active(self) -> None:
        if self._active is not None:
            thread, stop = self._active
            stop.set()
            thread.join()
            self._active = None

    def decode(self, path: Path, spec: MediaSpec) -> list[Segment]:
        """One file through the pool (time limit and isolation included); raises MediaError."""
        with contextlib.closing(self.imap([DecodeJob(Path(path), spec)])) as results:
            result = next(results)
        if result.error is not None:
            raise result.error
        return result.segments

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, the rest are killed."""
        if self._closed:
            return
        self._stop_active()
        self._closed = True
        asked = []
        for w in self._pool:
            if w.job is None and w.ready:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
                    asked.append(w)
        deadline = time.monotonic() + _JOIN_S
        for w in asked:  # exit on their own; the rest (busy, starting) are killed now
            w.proc.join(max(0.0, deadline - time.monotonic()))
        for w in self._pool:
            w.kill()
        self._pool.clear()

    # ---- dispatcher thread -------------------------------------------------------------------

    def _dispatch(
        self, jobs: Iterator[DecodeJob], out: queue.Queue[Any], stop: threading.Event
    ) -> None:
        try:
            self._run(jobs, out, stop)
        except BaseException as exc:  # hand it to the consumer rather than dying silently
            out.put(exc)
        finally:
            if stop.is_set():  # the consumer left early: abandon files still being decoded
                self._kill_busy()
            out.put(_END)

    def _run(self, jobs: Iterator[DecodeJob], out: queue.Queue[Any], stop: threading.Event) -> None:
        while len(self._pool) < self.workers:
            self._pool.append(self._new_worker())
        exhausted, start_failures = False, 0
        while not stop.is_set():
            exhausted = self._feed(jobs, out) if not exhausted else True
            busy = [w for w in self._pool if w.job is not None]
            if exhausted and not busy:
                return
            waitables = [w.conn for w in self._pool] + [w.proc.sentinel for w in self._pool]
            for ready in wait(waitables, timeout=self._wait_timeout()):
                worker = self._owner(ready)
                if worker is not None and not self._service(worker, ready, out):
                    start_failures = start_failures + 1 if not worker.ready else 0
                    if start_failures >= _MAX_START_FAILURES:
                        raise PoolBrokenError("decode workers die before they start")
                    self._replace(worker)
            self._expire(out)

    def _feed(self, jobs: Iterator[DecodeJob], out: queue.Queue[Any]) -> bool:
        """Give idle, ready workers a job while there is room; True once `jobs` is exhausted."""
        for w in self._pool:
            in_flight = sum(1 for x in self._pool if x.job is not None)
            if in_flight + out.qsize() >= self.capacity:
                return False
            if w.ready and w.job is None:
                job = next(jobs, None)
                if job is None:
                    return True
                self._next_id += 1
                w.job, w.started = (self._next_id, job), time.monotonic()
                # if the worker just died, its sentinel reports it and the job fails
                with contextlib.suppress(OSError):
                    w.conn.send((self._next_id, job.path, job.spec))
        return False

    def _wait_timeout(self) -> float:
        deadlines = [w.started + self.timeout_s for w in self._pool if w.job is not None]
        if not deadlines or self.timeout_s <= 0:
            return _POLL_S
        return max(0.0, min(_POLL_S, min(deadlines) - time.monotonic()))

    def _owner(self, ready: object) -> _Worker | None:
        return next((w for w in self._pool if ready in (w.conn, w.proc.sentinel)), None)

    def _service(self, w: _Worker, ready: object, out: queue.Queue[Any]) -> bool:
        """Read what `w` sent; False if the worker is gone (its job, if any, is reported)."""
        try:
            if ready is w.proc.sentinel and not w.conn.poll():
                raise EOFError
            message = w.conn.recv()
            if message[0] == "ready":
                w.ready = True
            elif w.job is not None and message[1] == w.job[0]:
                result = _receive(w, message)  # reads the tensors that follow
                w.job = None
                out.put(result)
        except (EOFError, OSError):  # died before or while sending
            if w.job is not None:
                code = w.proc.exitcode if not w.proc.is_alive() else "?"
                detail = f"the decoder process died (exit code {code})"
                out.put(_failure(w, "decoder_crashed", detail))
                w.job = None
            return False
        return True

    def _expire(self, out: queue.Queue[Any]) -> None:
        if self.timeout_s <= 0:
            return
        now = time.monotonic()
        for w in list(self._pool):
            if w.job is not None and now - w.started > self.timeout_s:
                detail = f"still decoding after {self.timeout_s:g} s; the decoder was stopped"
                out.put(_failure(w, "decode_timeout", detail))
                w.job = None
                self._replace(w)

    def _new_worker(self) -> _Worker:
        return _Worker(self._ctx, self.cfg, self._threads, self._decode_fn)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._pool[self._pool.index(w)] = self._new_worker()

    def _kill_busy(self) -> None:
        for w in list(self._pool):
            if w.job is not None:
                w.job = None
                self._replace(w)


_END = object()


def _failure(w: _Worker, reason: str, detail: str) -> DecodeResult:
    assert w.job is not None
    job = w.job[1]
    return DecodeResult(
        job, [], media_error(job.path, reason, detail), time.monotonic() - w.started
    )


def _receive(w: _Worker, message: tuple[Any, ...]) -> DecodeResult:
    """Build the result of a finished job; segment tensors are read straight off the pipe."""
    import torch

    assert w.job is not None
    job = w.job[1]
    if message[0] == "err":
        _, _, reason, detail, hint, seconds = message
        return DecodeResult(job, [], MediaError(str(job.path), reason, detail, hint), seconds)
    _, _, metas, seconds = message
    segments = []
    for path, modality, start, end, shape in metas:
        pixels = torch.empty(shape, dtype=torch.float32)
        w.conn.recv_bytes_into(_bytes_view(pixels))
        segments.append(Segment(path, modality, start, end, pixels))
    return DecodeResult(job, segments, None, seconds)


def _bytes_view(tensor: torch.Tensor) -> memoryview:
    """The tensor's memory as bytes (no copy): what the pipe sends and receives into."""
    array: Any = tensor.numpy()
    return memoryview(array).cast("B")


def default_workers() -> int:
    """Half the CPUs (the encoder wants the rest), at least 1, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _context() -> Any:
    """forkserver where available: workers fork from a clean process that has already imported
    torch and PyAV (fast restarts after a timeout, no inherited threads); spawn elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["lbsearch.media.pool", "lbsearch.media.decode", "torch", "av"])
        return ctx
    return mp.get_context("spawn")


def _worker_main(conn: Connection, cfg: Config, threads: int, decode_fn: DecodeFn | None) -> None:
    """Worker loop: decode each (id, path, spec) received; send the segments or the error."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    import torch

    from .decode import decode

    run = decode_fn or decode
    torch.set_num_threads(max(1, threads))
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, path, spec = message
        started = time.monotonic()
        try:
            segments = run(path, spec, cfg)
        except MediaError as exc:
            conn.send(("err", job_id, exc.reason, exc.detail, exc.hint, time.monotonic() - started))
            continue
        except Exception as exc:  # decode maps everything; this is a last line of defence
            detail = f"{type(exc).__name__}: {exc}"
            conn.send(("err", job_id, "decode_error", detail, "", time.monotonic() - started))
            continue
        metas = [(s.path, s.modality, s.start_s, s.end_s, tuple(s.pixels.shape)) for s in segments]
        conn.send(("ok", job_id, metas, time.monotonic() - started))
        for s in segments:
            conn.send_bytes(_bytes_view(s.pixels.contiguous()))
