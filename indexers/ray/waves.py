"""Ray behind a submit/next/close seam: the driver hands over (file, modality) jobs one by one as
it finds them, and takes back whole targets, embedded, as they complete.

Ray Data runs a dataset whose rows are known when it starts, so jobs go out in waves: a wave
starts when the driver has probed every file (the usual case: hashing is far quicker than
embedding), has found nothing new to embed for `quiet_s` seconds, or has `wave_max` jobs
waiting; jobs submitted meanwhile wait for the next wave. Ray itself stays up between waves;
each wave starts its actors again.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from lbsearch.catalog import NewSegment
from lbsearch.config import Config
from lbsearch.embedder import Embedder
from lbsearch.errors import MediaError

from .driver import check_seen
from .options import RayOptions
from .rows import TargetJob
from .stage import RayStage

_QUIET_S = 1.0
_WAVE_MAX = 10000
_JOIN_S = 5.0
_END = object()


@dataclass(frozen=True)
class EmbeddedResult:
    """One target of one file, settled: its segments with vectors, or its error."""

    job: Any  # the job as submitted (its `tag` is the caller's)
    segments: list[NewSegment]
    error: MediaError | None
    done: bool = True


class RayEmbedding:
    """`submit` jobs with a `path` and a `spec` (its modality picks the encoder), `next` returns
    EmbeddedResults, `close` at the end. Ray is joined or started at the first wave (a run with
    nothing to embed never starts it)."""

    def __init__(
        self,
        options: RayOptions,
        config: Config,
        encoders: Embedder,
        quiet_s: float = _QUIET_S,
        wave_max: int = _WAVE_MAX,
    ) -> None:
        self.stage = RayStage(options, config, encoders)
        self.quiet_s, self.wave_max = quiet_s, wave_max
        self._connected = False
        self._waiting: list[Any] = []
        self._last_submit = 0.0
        self._all_submitted = False
        self._out: queue.Queue[Any] = queue.Queue()
        self._wave: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, job: Any) -> None:
        self._waiting.append(job)
        self._last_submit = time.monotonic()

    def all_submitted(self) -> None:
        """Every file is probed: start on what waits without waiting to be quiet."""
        self._all_submitted = True

    def next(self, timeout: float) -> EmbeddedResult | None:
        """The next settled target, or None if none came within `timeout` seconds."""
        self._maybe_start_wave()
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._wave = None
            return self.next(0) if self._waiting else None
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the running wave (what it has not returned is abandoned), and Ray if started."""
        self._stop.set()
        if self._wave is not None:
            # the wave sees the stop at its next target; Ray's shutdown ends it if none comes
            self._wave.join(_JOIN_S)
            self._wave = None
        if self._connected:
            self.stage.__exit__()
            self._connected = False

    def _maybe_start_wave(self) -> None:
        if self._wave is not None or not self._waiting:
            return
        quiet = time.monotonic() - self._last_submit >= self.quiet_s
        if not (self._all_submitted or quiet or len(self._waiting) >= self.wave_max):
            return
        if not self._connected:
            self.stage.__enter__()
            self._connected = True
        jobs, self._waiting = self._waiting[: self.wave_max], self._waiting[self.wave_max :]
        self._wave = threading.Thread(target=self._run_wave, args=(jobs,), daemon=True)
        self._wave.start()

    def _run_wave(self, jobs: list[Any]) -> None:
        targets = [TargetJob(k, str(job.path), job.spec.modality) for k, job in enumerate(jobs)]
        results = self.stage.run(targets)
        try:
            for done in results:
                check_seen(done)
                self._out.put(EmbeddedResult(jobs[done.job.key], done.segments, done.error))
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the caller's thread
            self._out.put(exc)
        finally:
            results.close()
            self._out.put(_END)
