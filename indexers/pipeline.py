"""`lbsearch index`: walk -> survey -> probe (hash) | decode pool -> per-modality batches -> embed
-> write (one transaction per step, then the in-memory index) -> sweep -> save.

The walk and the catalog settle unchanged files without reading them. The other files are hashed
on a background thread (`Prober`) while the files already hashed are decoded in worker processes
(`LocalDecoding`, started at the first file that needs decoding) and embedded on this thread.
Each written batch is committed to the catalog before it touches an index, so a crash loses at
most the batches in flight and the next run (which repairs the indices from the catalog)
completes the work.

Seam: `_Run` asks a decoding back-end for `DecodeResult`s (parts of files, then each file's end)
and feeds them to the `Assembler`; another back-end (a cluster) can take `LocalDecoding`'s place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lbsearch.catalog import FailedFile, RunCounts
from lbsearch.config import Config
from lbsearch.embedder import Embedder
from lbsearch.library import Library
from lbsearch.media.versions import preprocess_version
from lbsearch.types import Modality

from .assemble import Assembler, Completed
from .plan import PlanOptions, Probed, Prober, Survey, survey
from .progress import (
    FileFailed,
    Finished,
    Hashed,
    Planned,
    Progress,
    Skipped,
    Swept,
    Warning_,
    ignore_progress,
)
from .walk import FoundFile, WalkOptions, WalkProblem, walk

if TYPE_CHECKING:
    from lbsearch.media.pool import DecodeJob, DecodePool, DecodeResult, DecodeStream, JobQueue

    from .ray.options import RayOptions
    from .ray.waves import EmbeddedResult, RayEmbedding

_TICK_S = 0.05  # how often the loop looks at the other source while it waits on one


@dataclass(frozen=True)
class IndexOptions:
    walk: WalkOptions = field(default_factory=WalkOptions)
    plan: PlanOptions = field(default_factory=PlanOptions)
    stop: threading.Event = field(default_factory=threading.Event, compare=False)
    ray: RayOptions | None = None  # decode and embed on a Ray cluster (indexers/ray)


def run_index(
    roots: Sequence[Path],
    library: Library,
    encoders: Embedder,
    config: Config,
    options: IndexOptions | None = None,
    progress: Progress = ignore_progress,
) -> Finished:
    options = options or IndexOptions()
    started = time.monotonic()
    roots = [Path(r).expanduser().absolute() for r in roots]
    encodings = {m.value: str(encoders.encoding(m)) for m in Modality}
    for modality in Modality:
        library.set_modality(
            modality, encoders.model_id(modality), modality_recipe(modality, encoders, config)
        )
    run_id = library.catalog.start_run([str(r) for r in roots], encodings)
    swept_roots = [r for r in roots if r.exists()]
    for missing in set(roots) - set(swept_roots):
        progress(Warning_(str(missing), "not found: skipped (its indexed files are kept)"))
    surveyed = survey(_found(swept_roots, options.walk, progress), library, options.plan)
    progress(
        Planned(
            len(surveyed.seen),
            surveyed.unchanged,
            len(surveyed.candidates),
            surveyed.candidate_bytes,
        )
    )
    run = _Run(surveyed, library, encoders, config, options, progress)
    interrupted = run.execute(options.stop)
    removed = 0 if interrupted else _sweep(library, swept_roots, surveyed, progress)
    library.save()
    tally = run.tally
    counts = RunCounts(
        tally.added, tally.updated, surveyed.unchanged, tally.reused, removed, tally.failed
    )
    library.catalog.finish_run(run_id, counts, status="interrupted" if interrupted else "finished")
    embedded = run.assembler.embedded
    seconds = time.monotonic() - started
    finished = Finished(counts, embedded, seconds, interrupted, tally.reasons)
    progress(finished)
    return finished


def modality_recipe(modality: Modality, encoders: Embedder, config: Config) -> str:
    """Recorded with the model id: the preprocessing the vectors are made with. The back-end
    and dtype are not part of it: torch fp32/bf16/fp16 and ONNX Runtime fp32/int8 give the same
    vectors for search (cosine >= 0.997), so they are recorded per run, as provenance."""
    del encoders  # one signature for every caller; the encoding is not part of the recipe
    return preprocess_version(modality, config)


def _found(roots: Sequence[Path], options: WalkOptions, progress: Progress) -> Iterator[FoundFile]:
    for item in walk(roots, options):
        if isinstance(item, WalkProblem):
            progress(Warning_(str(item.path), item.detail))
        else:
            yield item


class _Tally:
    """Run totals, counted as rows are committed."""

    def __init__(self) -> None:
        self.added = self.updated = self.reused = self.failed = 0
        self.reasons: dict[str, int] = {}

    def count(self, completed: Sequence[Completed]) -> None:
        for item in completed:
            if isinstance(item.row, FailedFile):
                self.failed += 1
                self.reasons[item.row.reason] = self.reasons.get(item.row.reason, 0) + 1
                continue
            self.added += not item.known
            self.updated += item.known
            self.reused += item.reused


class LocalDecoding:
    """Decoding on this machine: a DecodePool, started when the first job comes (a run with
    nothing to decode starts no process), fed while it runs."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._pool: DecodePool | None = None
        self._jobs: JobQueue | None = None
        self._stream: DecodeStream | None = None

    def submit(self, job: DecodeJob) -> None:
        if self._jobs is None:
            from lbsearch.media.pool import DecodePool, JobQueue

            self._pool, self._jobs = DecodePool(self.config), JobQueue()
            self._stream = self._pool.start(self._jobs)
        self._jobs.put(job)

    def next(self, timeout: float) -> DecodeResult | None:
        """The next part or end of a file, or None if none came within `timeout` seconds."""
        return self._stream.get(timeout) if self._stream is not None else None

    def all_submitted(self) -> None:
        """Every file is probed (a retried target may still come): nothing to do here, the
        pool decodes jobs as they come."""

    def close(self) -> None:
        """Stop decoding (files still in the workers are abandoned)."""
        if self._pool is not None:
            self._pool.close()


class _Run:
    """One run's loop: admit probed files, decode, embed, write; all on the calling thread."""

    def __init__(
        self,
        surveyed: Survey,
        library: Library,
        encoders: Embedder,
        config: Config,
        options: IndexOptions,
        progress: Progress,
    ) -> None:
        self.library, self.encoders, self.progress = library, encoders, progress
        # segments gathered per encoder call; the embedder splits them into its device's batches
        self.assembler = Assembler(encoders, config.runtime.batch_size or 32, progress)
        self.tally = _Tally()
        self.decoding: LocalDecoding | RayEmbedding = LocalDecoding(config)
        if options.ray is not None:  # decoded and embedded on the cluster, settled per target
            from .ray.waves import RayEmbedding

            self.decoding = RayEmbedding(options.ray, config, encoders)
        self.prober = Prober(surveyed.candidates, config, options.plan)
        self.open_jobs = 0  # decode jobs whose last result has not come yet
        self._ready: list[Completed] = []

    def execute(self, stop: threading.Event) -> bool:
        """Index every candidate; False when done, True when stopped early."""
        try:
            while not (self.prober.finished and not self.open_jobs):
                if stop.is_set():
                    return True
                self._step()
                self._write()
            self.assembler.encode_all()
            self._write()
            return False
        finally:
            self.prober.stop()
            self.decoding.close()

    def _step(self) -> None:
        """Wait a little on whichever source has work, then take what the other has ready."""
        if self.open_jobs:
            result = self.decoding.next(_TICK_S)
            if result is not None:
                self._decoded(result)
            probed = self.prober.take(timeout=0)
        else:
            probed = self.prober.take(timeout=_TICK_S)
        for item in probed:
            self._admit(item)
        for index, target in self.assembler.take_requeued():
            self._submit(index, target)
        if self.prober.finished:
            self.decoding.all_submitted()

    def _admit(self, probed: Probed) -> None:
        path = str(probed.candidate.found.path)
        self.progress(Hashed(path, probed.bytes_read))
        outcome = probed.outcome
        if outcome is None:
            self.progress(Skipped(path))
        elif isinstance(outcome, FailedFile):
            self.progress(FileFailed(outcome.path, outcome.reason, outcome.detail))
            self._ready.append(Completed(outcome))
        else:
            catalog = self.library.catalog
            for target in outcome.targets:
                model_id = self.encoders.model_id(target)
                stored = catalog.segments_for_hash(outcome.content_hash, target, model_id)
                if stored is not None:
                    outcome.reused[target] = stored
            index, decode = self.assembler.add_unit(outcome)
            for target in decode:
                self._submit(index, target)

    def _submit(self, index: int, target: Modality) -> None:
        from lbsearch.media.pool import DecodeJob

        path = self.assembler.unit(index).found.path
        spec = self.encoders.media_spec(target)
        self.decoding.submit(DecodeJob(path, spec, tag=(index, target)))
        self.open_jobs += 1

    def _decoded(self, result: DecodeResult | EmbeddedResult) -> None:
        from .ray.waves import EmbeddedResult  # light: Ray itself is imported only to run

        index, target = result.job.tag
        if isinstance(result, EmbeddedResult):
            self.assembler.add_embedded(index, target, result.segments)
        elif result.error is None:
            self.assembler.add_part(index, target, result.segments)
        if result.done:
            self.open_jobs -= 1
            self.assembler.end_target(index, target, result.error)

    def _write(self) -> None:
        """Commit the files completed since the last call in one transaction."""
        ready = self._ready + self.assembler.take_ready()
        self._ready = []
        if ready:
            self.library.write_batch([item.row for item in ready])
            self.tally.count(ready)


def _sweep(library: Library, roots: Sequence[Path], surveyed: Survey, progress: Progress) -> int:
    """Forget files under the walked roots that are gone (or now ignored)."""
    gone = [
        record.id
        for root in roots
        for record in library.catalog.iter_files(str(root))
        if record.path not in surveyed.seen
    ]
    if gone:
        library.delete_files(gone)
        progress(Swept(len(gone)))
    return len(gone)
