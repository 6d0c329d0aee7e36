"""DecodePool: files decoded in worker processes, with a time limit per file, results streamed.

Why processes: FFmpeg and Pillow can hang or crash on hostile files, and a thread can be neither
killed nor isolated. Each worker owns a pipe; the pool's dispatcher thread (not the caller's)
hands out jobs, reads results as soon as they are ready, kills a worker whose file overruns
`media.decode_timeout_s` (the file becomes a `decode_timeout` result) and starts a fresh one.
A worker that dies (segfault, OOM kill) gives `decoder_crashed` for its file; one whose data
grows past `media.max_worker_memory_mb` gives `out_of_memory` (worker.py). A job the caller
cancels (`cancelled`, the web service's client gone) has its worker killed and replaced at once.

Streaming: a worker sends a file's segments in parts of about 32 MB as it decodes them
(worker.py), and `stream` yields each part as soon as it arrives (`imap` joins them into whole
files). At most `workers + prefetch` files are being decoded, and at most as many parts wait for
the consumer: past that the dispatcher stops reading the pipes and the workers block, so a slow
consumer (the encoder) holds decoding back and memory stays bounded whatever a file's length.
The time limit counts the time a worker takes to deliver its next part (or its first), not the
time it waits for the consumer. Jobs can also arrive while decoding runs (`JobQueue`).

The dispatcher sleeps in one `wait` on the workers' pipes and a bell (media/bell.py) that the
consumer rings when it takes a result and a JobQueue rings when a job arrives, so a freed slot is
refilled at once, not at the next poll.

Transfer is cheap: tensors travel as raw bytes (`send_bytes`) and are received straight into
freshly allocated tensors (`recv_bytes_into`), with no pickling of pixel data.

Workers start with forkserver (spawn off Linux), so a script that creates a pool must guard its
entry point with `if __name__ == "__main__":`, as for any multiprocessing code.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import MediaError
from ..types import MediaSpec, Segment
from .bell import Bell
from .jobs import LATER, DecodeJob, DecodeResult, IterSource, JobQueue, no_wakeup
from .processes import (
    PoolBrokenError,
    broken_pool,
    default_workers,
    release_multiprocessing_files,
    safe_start,
    start_context,
)
from .reasons import media_error
from .worker import DecodeFn, receive_segments, worker_main

_POLL_S = 0.5  # dispatcher wake-up for time limits; the consumer and new jobs ring the bell
_MAX_START_FAILURES = 3  # workers dying before they are ready: the pool itself is broken
_JOIN_S = 2.0

__all__ = ["DecodeFn", "DecodeJob", "DecodePool", "DecodeResult", "DecodeStream", "JobQueue"]
__all__ += ["PoolBrokenError"]  # from processes.py, raised here


class DecodeStream:
    """The results of one `DecodePool.start`, read with `get`; `close` abandons the rest."""

    def __init__(self, pool: DecodePool, out: queue.Queue[Any], bell: Bell) -> None:
        self._pool, self._out, self._bell = pool, out, bell
        self.finished = False

    def get(self, timeout: float | None = None) -> DecodeResult | None:
        """The next result (a part or the end of a file), or None after `timeout` seconds or
        once every job is done (then `finished` is True)."""
        if self.finished:
            return None
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            return None
        self._bell.ring()  # room for one more result: the dispatcher may read a pipe again
        if item is _END:
            self.finished = True
            self._pool._stop_active()
            return None
        if isinstance(item, BaseException):
            self.finished = True
            self._pool._stop_active()
            raise item
        return item

    def close(self) -> None:
        self.finished = True
        self._pool._stop_active()


class _Worker:
    def __init__(self, ctx: Any, cfg: Config, threads: int, decode_fn: DecodeFn | None) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc = ctx.Process(
            target=worker_main,
            args=(child, cfg, threads, decode_fn),
            daemon=True,
            name="lbsearch-decode",
        )
        try:
            with safe_start():  # never the current directory's `lbsearch` (processes.py)
                self.proc.start()
        except (OSError, EOFError) as exc:  # e.g. the forkserver died while starting
            raise broken_pool(
                f"a worker could not be started ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            child.close()
        self.ready = False
        self.fatal = ""  # why the worker gave up before it was ready, if it could say
        self.job: tuple[int, DecodeJob] | None = None
        self.started = 0.0  # when the job was sent
        self.clock = 0.0  # when the time limit started counting (job sent, or last part read)

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
        cancelled: Callable[[DecodeJob], bool] | None = None,
    ) -> None:
        """`workers` 0: media.decode_workers (0 there: half the CPUs). `timeout_s` None:
        media.decode_timeout_s (0 disables). `prefetch`: finished results allowed to wait for
        the consumer (default: one per worker). `decode_fn`: a picklable top-level function
        replacing `decode_stream` in the workers (tests, custom decoders). `cancelled`: asked
        about each running job at every wake-up; a job it answers True for is stopped at once
        (its worker killed and replaced, as for a time-out) and ends with a result carrying
        neither segments nor error. No process starts before the first job."""
        self.cfg = cfg
        self.workers = workers or cfg.media.decode_workers or default_workers()
        self.timeout_s = cfg.media.decode_timeout_s if timeout_s is None else timeout_s
        self.capacity = self.workers + (self.workers if prefetch is None else max(0, prefetch))
        self._threads = torch_threads
        self._decode_fn = decode_fn
        self._cancelled = cancelled
        self._ctx = start_context()
        self._pool: list[_Worker] = []
        self._next_id = 0
        self._active: tuple[threading.Thread, threading.Event, Bell] | None = None
        self._closed = False

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, jobs: Iterable[DecodeJob] | JobQueue) -> DecodeStream:
        """Start decoding `jobs`; read the results (parts, in completion order) from the stream.

        An iterable is read lazily on the pool's dispatcher thread, one job per free slot, so it
        should be cheap to advance; a JobQueue can grow while decoding runs. One stream at a time.
        """
        if self._closed:
            raise RuntimeError("DecodePool is closed")
        if self._active is not None:
            raise RuntimeError("DecodePool runs one stream at a time")
        source = jobs if isinstance(jobs, JobQueue) else IterSource(iter(jobs))
        bell = Bell()
        if isinstance(source, JobQueue):
            source.on_change = bell.ring
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._dispatch, args=(source, out, stop, bell), daemon=True
        )
        self._active = (thread, stop, bell)
        thread.start()
        return DecodeStream(self, out, bell)

    def stream(self, jobs: Iterable[DecodeJob] | JobQueue) -> Generator[DecodeResult, None, None]:
        """Results part by part, as `start` gives them. Leaving the loop early abandons the
        files still being decoded."""
        results = self.start(jobs)
        try:
            while (result := results.get()) is not None:
                yield result
        finally:
            results.close()

    def imap(self, jobs: Iterable[DecodeJob] | JobQueue) -> Generator[DecodeResult, None, None]:
        """Whole files, in completion order: each file's parts joined into one result (memory:
        all of a file's segments at once; use `stream` for long media)."""
        parts: dict[int, list[Segment]] = {}
        for result in self.stream(jobs):
            gathered = parts.setdefault(result.serial, [])
            if not result.done:
                gathered += result.segments
                continue
            del parts[result.serial]
            segments = [] if result.error else gathered + result.segments
            yield DecodeResult(
                result.job, segments, result.error, result.seconds, True, result.serial
            )

    def _stop_active(self) -> None:
        if self._active is not None:
            thread, stop, bell = self._active
            stop.set()
            bell.ring()
            if thread is not threading.current_thread():
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
        """Stop every worker: idle ones are asked to exit, the rest are killed. Then the
        forkserver stops and multiprocessing's temporary folder (pymp-*) is removed, so that
        nothing is left behind even if this process is killed later."""
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
        started_any = bool(self._pool)
        self._pool.clear()
        if started_any:
            release_multiprocessing_files()

    # ---- dispatcher thread -------------------------------------------------------------------

    def _dispatch(
        self, source: Any, out: queue.Queue[Any], stop: threading.Event, bell: Bell
    ) -> None:
        try:
            self._run(source, out, stop, bell)
        except BaseException as exc:  # hand it to the consumer rather than dying silently
            out.put(exc)
        finally:
            if stop.is_set():  # the consumer left early: abandon files still being decoded
                self._kill_busy()
            out.put(_END)
            if isinstance(source, JobQueue):
                source.on_change = no_wakeup
            bell.close()

    def _run(self, source: Any, out: queue.Queue[Any], stop: threading.Event, bell: Bell) -> None:
        exhausted, start_failures = False, 0
        while not stop.is_set():
            bell.arm()  # before looking: a change from here on wakes the wait below
            exhausted = exhausted or self._feed(source, out)
            busy = [w for w in self._pool if w.job is not None]
            if exhausted and not busy:
                return
            backlog = out.qsize() >= self.capacity
            if backlog:  # the consumer is behind: leave the pipes unread, the workers wait
                for w in busy:
                    w.clock = time.monotonic()  # and waiting does not count against the limit
            waitables: list[Any] = [bell.reader, *(w.proc.sentinel for w in self._pool)]
            waitables += [] if backlog else [w.conn for w in self._pool]
            for ready in wait(waitables, timeout=self._wait_timeout()):
                if ready is bell.reader:
                    bell.silence()
                    continue
                worker = self._owner(ready)
                if worker is not None and not self._service(worker, ready, out):
                    start_failures = start_failures + 1 if not worker.ready else 0
                    if start_failures >= _MAX_START_FAILURES:
                        raise broken_pool(_start_failure(worker, start_failures))
                    self._replace(worker)
            self._expire(out)

    def _feed(self, source: Any, out: queue.Queue[Any]) -> bool:
        """Give idle, ready workers a job while there is room; True once `source` is exhausted.
        Workers start with the first job, so a pool that gets none starts no process."""
        while True:
            in_flight = sum(1 for x in self._pool if x.job is not None)
            if in_flight + out.qsize() >= self.capacity:
                return False
            upcoming = source.peek()
            if upcoming is None or upcoming is LATER:
                return upcoming is None
            idle = next((w for w in self._pool if w.ready and w.job is None), None)
            if idle is None:
                if not self._pool:
                    self._pool.extend(self._new_worker() for _ in range(self.workers))
                return False
            job = source.take()
            self._next_id += 1
            now = time.monotonic()
            idle.job, idle.started, idle.clock = (self._next_id, job), now, now
            # if the worker just died, its sentinel reports it and the job fails
            with contextlib.suppress(OSError):
                idle.conn.send((self._next_id, job.path, job.task or job.spec))

    def _wait_timeout(self) -> float:
        deadlines = [w.clock + self.timeout_s for w in self._pool if w.job is not None]
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
            elif message[0] == "fatal":
                w.fatal = message[1]
                return False
            elif w.job is not None and message[1] == w.job[0]:
                out.put(self._receive(w, message))  # reads the tensors that follow
        except (EOFError, OSError):  # died before or while sending
            if w.job is not None:
                code = w.proc.exitcode if not w.proc.is_alive() else "?"
                detail = f"the decoder process died (exit code {code})"
                out.put(_failure(w, "decoder_crashed", detail))
                w.job = None
            return False
        return True

    def _receive(self, w: _Worker, message: tuple[Any, ...]) -> DecodeResult:
        """The result `message` announces; a part keeps the job, an end or an error frees it."""
        assert w.job is not None
        serial, job = w.job
        kind = message[0]
        if kind == "err":
            _, _, reason, detail, hint, seconds = message
            w.job = None
            error = MediaError(str(job.path), reason, detail, hint)
            return DecodeResult(job, [], error, seconds, True, serial)
        segments = receive_segments(w.conn, message[2])
        if kind == "part":
            w.clock = time.monotonic()
            return DecodeResult(job, segments, None, w.clock - w.started, False, serial)
        w.job = None
        payload = message[4] if len(message) > 4 else None  # a WorkerTask's answer
        return DecodeResult(job, segments, None, message[3], True, serial, payload)

    def _expire(self, out: queue.Queue[Any]) -> None:
        self._stop_cancelled(out)
        if self.timeout_s <= 0:
            return
        now = time.monotonic()
        for w in list(self._pool):
            if w.job is not None and now - w.clock > self.timeout_s:
                detail = f"no progress for {self.timeout_s:g} s; the decoder was stopped"
                out.put(_failure(w, "decode_timeout", detail))
                w.job = None
                self._replace(w)

    def _stop_cancelled(self, out: queue.Queue[Any]) -> None:
        """Kill the workers of cancelled jobs: a client that left frees its worker now, not at
        the time limit."""
        if self._cancelled is None:
            return
        for w in list(self._pool):
            if w.job is not None and self._cancelled(w.job[1]):
                serial, job = w.job
                out.put(DecodeResult(job, [], None, time.monotonic() - w.started, True, serial))
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


def _start_failure(w: _Worker, count: int) -> str:
    if w.fatal:
        return w.fatal
    w.proc.join(_JOIN_S)
    return f"{count} in a row exited before they were ready (exit code {w.proc.exitcode})"


def _failure(w: _Worker, reason: str, detail: str) -> DecodeResult:
    assert w.job is not None
    serial, job = w.job
    error = media_error(job.path, reason, detail)
    return DecodeResult(job, [], error, time.monotonic() - w.started, True, serial)
