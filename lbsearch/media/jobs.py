"""What goes into a DecodePool and what comes out: jobs, results, and job sources."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MediaError
from ..types import MediaSpec, Segment
from .worker import WorkerTask

LATER = object()  # a JobQueue's answer while it is empty but still open


@dataclass(frozen=True)
class DecodeJob:
    """One file to decode for one encoder; `tag` is the caller's, returned untouched."""

    path: Path
    spec: MediaSpec
    tag: Any = field(default=None, compare=False)
    task: WorkerTask | None = field(default=None, compare=False)  # run instead of decoding


@dataclass(frozen=True)
class DecodeResult:
    """A file's segments (all of them, or with `done` False one part of them), or its error.

    A file's parts come in order; the last has `done` True (and may hold no segment). A file that
    fails after some parts ends with a result carrying the error: drop the parts already seen."""

    job: DecodeJob
    segments: list[Segment]
    error: MediaError | None
    seconds: float  # wall time of the decode so far (in the worker; up to the kill for a timeout)
    done: bool = True
    serial: int = field(default=0, compare=False)  # the pool's number for the job
    payload: bytes | None = field(default=None, compare=False)  # a WorkerTask's answer

    @property
    def ok(self) -> bool:
        return self.error is None


class JobQueue:
    """Jobs handed to a running `DecodePool.start` one by one, as the caller finds them; `close`
    once no more will come. Thread-safe; never blocks."""

    def __init__(self) -> None:
        self._jobs: deque[DecodeJob] = deque()
        self._closed = False
        self.on_change: Callable[[], None] = no_wakeup  # the pool's wake-up, set by the pool

    def put(self, job: DecodeJob) -> None:
        if self._closed:
            raise RuntimeError("JobQueue is closed")
        self._jobs.append(job)
        self.on_change()

    def close(self) -> None:
        self._closed = True
        self.on_change()

    def peek(self) -> DecodeJob | object | None:
        """The next job (left in place); LATER if none yet; None once closed and empty."""
        closed = self._closed  # read first: a job put just before close() is never lost
        if self._jobs:
            return self._jobs[0]
        return None if closed else LATER

    def take(self) -> DecodeJob:
        return self._jobs.popleft()


def no_wakeup() -> None:
    """A JobQueue's `on_change` while no pool reads it."""


class IterSource:
    """A plain iterable of jobs, read one at a time (with one job of look-ahead)."""

    def __init__(self, jobs: Iterator[DecodeJob]) -> None:
        self._jobs = jobs
        self._next: DecodeJob | None = None

    def peek(self) -> DecodeJob | None:
        """The next job (read ahead, kept); None once the iterable is exhausted."""
        if self._next is None:
            self._next = next(self._jobs, None)
        return self._next

    def take(self) -> DecodeJob:
        job = self.peek()
        assert job is not None
        self._next = None
        return job
