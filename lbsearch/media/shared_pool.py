"""One decode pool for a long-lived process (the web service): jobs from any thread, bounded.

A server must never decode a client's file in its own process (a 121-megapixel PNG takes
gigabytes, a crashing decoder takes the process with it), and must not start a pool per request
(closing a pool stops the process-wide forkserver under the feet of another). `SharedPool` owns
one `DecodePool`, started on the first job and stopped by `close`, fed through one `JobQueue`:

- `submit(path, spec)` returns a `Ticket` at once, or raises `PoolBusy` when `max_jobs` tickets
  are queued or running (the caller answers 503 with Retry-After);
- `Ticket.parts()` yields the file's segments part by part as the worker sends them (a long
  video is never whole in memory) and raises the file's MediaError;
- `Ticket.cancel()` (a client that went away) drops a queued job before it starts and the results
  of a running one; the worker finishes that file within the pool's time limit.

Decoding uses the pool's limits: media.max_image_pixels, max_file_bytes, decode_timeout_s and the
video/audio segment limits, in worker processes of their own.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import LbsearchError, MediaError
from ..types import MediaSpec, Segment
from .jobs import LATER, DecodeJob, DecodeResult, JobQueue
from .pool import DecodePool, DecodeStream

_PARTS_WAITING = 2  # parts a ticket holds before the pool waits for its reader
_DONE = object()


class PoolBusy(LbsearchError):
    """Too many decode jobs are queued or running; try again shortly."""


class Ticket:
    """One submitted file: read `parts()`, or `cancel()` it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cancelled = threading.Event()
        self._parts: queue.Queue[Any] = queue.Queue(maxsize=_PARTS_WAITING)

    def parts(self, timeout_s: float | None = None) -> Iterator[list[Segment]]:
        """Segments as they are decoded; MediaError if the file cannot be; `timeout_s` bounds
        the wait for each part (then the ticket is cancelled and MediaError raised)."""
        while True:
            try:
                item = self._parts.get(timeout=timeout_s)
            except queue.Empty:
                self.cancel()
                raise MediaError(str(self.path), "decode_timeout", "no result in time") from None
            if item is _DONE:
                return
            if isinstance(item, MediaError):
                raise item
            yield item

    def segments(self, timeout_s: float | None = None) -> list[Segment]:
        return [s for part in self.parts(timeout_s) for s in part]

    def cancel(self) -> None:
        self.cancelled.set()

    def _deliver(self, item: Any) -> None:
        """Called by the router: wait for room unless the reader went away."""
        while not self.cancelled.is_set():
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
            if not upcoming.tag.cancelled.is_set():
                return upcoming
            self.take()
            self.release(upcoming.tag)

    release: Any = None  # set by SharedPool: frees a ticket's place


class SharedPool:
    """Thread-safe. `workers` 0: the config's decode workers."""

    def __init__(self, config: Config, max_jobs: int, workers: int = 0) -> None:
        self.config, self.max_jobs, self.workers = config, max_jobs, workers
        self._lock = threading.Lock()
        self._active: set[Ticket] = set()
        self._pool: DecodePool | None = None
        self._jobs: _Queue | None = None
        self._router: threading.Thread | None = None
        self._closed = False

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._active)

    def submit(self, path: Path, spec: MediaSpec) -> Ticket:
        with self._lock:
            if self._closed:
                raise PoolBusy("the service is stopping", "try again later")
            if len(self._active) >= self.max_jobs:
                raise PoolBusy(
                    f"{self.max_jobs} files are being decoded already", "try again shortly"
                )
            ticket = Ticket(Path(path))
            self._active.add(ticket)
            jobs = self._started()
        jobs.put(DecodeJob(Path(path), spec, tag=ticket))
        return ticket

    def close(self) -> None:
        with self._lock:
            self._closed = True
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
            self._pool = DecodePool(self.config, workers=self.workers)
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
        if result.done:
            if result.error is None:
                ticket._deliver(_DONE)
            self._release(ticket)

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            self._active.discard(ticket)
