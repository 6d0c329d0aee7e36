"""One decode pool for a long-lived process (the web service): jobs from any thread, bounded.

A server must never decode a client's file in its own process (a 121-megapixel PNG takes
gigabytes, a crashing decoder takes the process with it), and must not start a pool per request
(closing a pool stops the process-wide forkserver under the feet of another). `SharedPool` owns
one `DecodePool`, started on the first job and stopped by `close`, fed through one `JobQueue`:

- `submit(path, spec)` returns a `Ticket` at once, or raises `PoolBusy` when `max_jobs` tickets
  are queued or running (the caller answers 503 with Retry-After);
- `Ticket.parts()` yields the file's segments part by part as the worker sends them (a long
  video is never whole in memory) and raises the file's MediaError;
- `submit(path, task)` runs a `WorkerTask` (a video's or a sound's thumbnail) the same way;
  `Ticket.payload()` is its answer;
- `Ticket.cancel()` (a client that went away) drops a queued job before it starts, and stops a
  running one at once: its worker is killed and replaced, as for a time-out.

Decoding uses the indexer's limits: media.max_image_pixels, max_file_bytes, decode_timeout_s,
max_worker_memory_mb and the video/audio segment limits, in worker processes of their own.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import LbsearchError, MediaError
from ..types import MediaSpec, Modality, Segment
from .jobs import LATER, DecodeJob, DecodeResult, JobQueue, no_wakeup
from .pool import DecodePool, DecodeStream
from .worker import DecodeFn, WorkerTask

_PARTS_WAITING = 2  # parts a ticket holds before the pool waits for its reader
_DONE = object()
_NOTHING = object()
_CHECK_S = 0.1  # how often a waiting reader looks at its cancel event


class PoolBusy(LbsearchError):
    """Too many decode jobs are queued or running; try again shortly."""


class Ticket:
    """One submitted file: read `parts()`, or `cancel()` it."""

    def __init__(
        self,
        path: Path,
        wake: Callable[[], None] = no_wakeup,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.path = path
        self.cancelled = threading.Event()  # this ticket's own: `cancel`
        self._caller = cancelled  # the caller's (a request's, shared by its files): only read
        self._wake = wake  # the pool's dispatcher: a cancelled job's worker is stopped at once
        self._parts: queue.Queue[Any] = queue.Queue(maxsize=_PARTS_WAITING)

    def parts(self, timeout_s: float | None = None) -> Iterator[list[Segment]]:
        """Segments as they are decoded; MediaError if the file cannot be; `timeout_s` bounds
        the wait for each part (then the ticket is cancelled and MediaError raised)."""
        for item in self._items(timeout_s):
            if isinstance(item, list):
                yield item

    def payload(self, timeout_s: float | None = None) -> bytes:
        """A WorkerTask's answer; MediaError if it failed (or `timeout_s` passed)."""
        answer = b""
        for item in self._items(timeout_s):
            if isinstance(item, bytes):
                answer = item
        return answer

    def _items(self, timeout_s: float | None) -> Iterator[Any]:
        """Stops quietly once the ticket is cancelled (by `cancel` or its caller's event)."""
        while True:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            item = _NOTHING
            while item is _NOTHING and not self.stopped:
                if deadline is not None and time.monotonic() >= deadline:
                    self.cancel()
                    detail = "no result in time"
                    raise MediaError(str(self.path), "decode_timeout", detail)
                with contextlib.suppress(queue.Empty):
                    item = self._parts.get(timeout=_CHECK_S)
            if item is _NOTHING:
                return
            if item is _DONE:
                return
            if isinstance(item, MediaError):
                raise item
            yield item

    def segments(self, timeout_s: float | None = None) -> list[Segment]:
        return [s for part in self.parts(timeout_s) for s in part]

    @property
    def stopped(self) -> bool:
        """Cancelled, by `cancel` or by the caller's event."""
        return self.cancelled.is_set() or (self._caller is not None and self._caller.is_set())

    def cancel(self) -> None:
        if not self.cancelled.is_set():
            self.cancelled.set()
            self._wake()

    def _deliver(self, item: Any) -> None:
        """Called by the router: wait for room unless the reader went away."""
        while not self.stopped:
            with contextlib.suppress(queue.Full):
                self._parts.put(item, timeout=0.1)
                return


class _Queue(JobQueue):
    """A JobQueue that skips the jobs of cancelled tickets."""

    def peek(self) -> DecodeJob | object | None:
        while True:
            upcoming = super().peek()
            if upcoming is None or upcoming is LATER:
                return upcoming
            assert isinstance(upcoming, DecodeJob)
            if not upcoming.tag.stopped:
                return upcoming
            self.take()
            self.release(upcoming.tag)

    release: Any = None  # set by SharedPool: frees a ticket's place


class SharedPool:
    """Thread-safe. `workers` 0: the config's decode workers."""

    def __init__(
        self, config: Config, max_jobs: int, workers: int = 0, decode_fn: DecodeFn | None = None
    ) -> None:
        """`decode_fn`: as for DecodePool (tests)."""
        self.config, self.max_jobs, self.workers = config, max_jobs, workers
        self._decode_fn = decode_fn
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when a place frees
        self._active: set[Ticket] = set()
        self._pool: DecodePool | None = None
        self._jobs: _Queue | None = None
        self._router: threading.Thread | None = None
        self._closed = False

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._active)

    def submit(
        self,
        path: Path,
        spec: MediaSpec | WorkerTask,
        cancelled: threading.Event | None = None,
        wait_s: float = 0.0,
    ) -> Ticket:
        """Queue `path` (or run a task); `cancelled`: the caller's event (a client that went
        away), which cancels the ticket, and stops its running worker, as `Ticket.cancel` does.
        `wait_s`: how long to wait for a free place before PoolBusy (thumbnails wait; uploads
        are answered 503 at once)."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            while not self._closed and len(self._active) >= self.max_jobs:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PoolBusy(
                        f"{self.max_jobs} files are being decoded already", "try again shortly"
                    )
                self._room.wait(left)
            if self._closed:
                raise PoolBusy("the service is stopping", "try again later")
            jobs = self._started()
            ticket = Ticket(Path(path), self._wake, cancelled)
            self._active.add(ticket)
        if isinstance(spec, WorkerTask):  # the spec only names a modality; the task runs
            jobs.put(DecodeJob(Path(path), MediaSpec(Modality.IMAGE), ticket, spec))
        else:
            jobs.put(DecodeJob(Path(path), spec, tag=ticket))
        return ticket

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._room.notify_all()
            pool, jobs, router = self._pool, self._jobs, self._router
            for ticket in self._active:
                ticket.cancel()
        if jobs is not None:
            jobs.close()
        if pool is not None:
            pool.close()
        if router is not None:
            router.join(10)

    # ---- the router thread --------------------------------------------------------------

    def _started(self) -> _Queue:
        if self._jobs is None:
            self._pool = DecodePool(
                self.config, self.workers, decode_fn=self._decode_fn, cancelled=_is_cancelled
            )
            self._jobs = _Queue()
            self._jobs.release = self._release
            stream = self._pool.start(self._jobs)
            self._router = threading.Thread(
                target=self._route, args=(stream,), name="lbsearch-decode-router", daemon=True
            )
            self._router.start()
        return self._jobs

    def _route(self, stream: DecodeStream) -> None:
        """Hand each result to its ticket, until the pool stops."""
        try:
            while not stream.finished:
                result = stream.get(timeout=0.5)
                if result is not None:
                    self._hand_over(result)
        except Exception as error:  # the pool broke: every waiting ticket gets the error
            with self._lock:
                waiting = list(self._active)
            for ticket in waiting:
                failed = MediaError(str(ticket.path), "decoder_crashed", str(error))
                ticket._deliver(failed)
                self._release(ticket)

    def _hand_over(self, result: DecodeResult) -> None:
        ticket: Ticket = result.job.tag
        if result.error is not None:
            ticket._deliver(result.error)
        elif result.segments:
            ticket._deliver(result.segments)
        if result.payload is not None:
            ticket._deliver(result.payload)
        if result.done:
            if result.error is None:
                ticket._deliver(_DONE)
            self._release(ticket)

    def _wake(self) -> None:
        """Ring the pool's dispatcher (a ticket was cancelled)."""
        if self._jobs is not None:
            self._jobs.on_change()

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            self._active.discard(ticket)
            self._room.notify_all()


def _is_cancelled(job: DecodeJob) -> bool:
    ticket: Ticket = job.tag
    return ticket.stopped
