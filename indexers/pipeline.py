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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lbsearch.catalog import FailedFile, FileStatus, RunCounts, StoredSegment
from lbsearch.config import Config
from lbsearch.embedder import Embedder
from lbsearch.library import Library
from lbsearch.types import Modality

from .assemble import Assembler, Completed
from .models import ModelPlan, finish_reembeds, model_recipe, register_models
from .offline import Walked, refuse_unknown_roots, sweep
from .plan import PlanOptions, Probed, Prober, Survey, survey
from .progress import (
    FileFailed,
    Finished,
    Hashed,
    Planned,
    Progress,
    Skipped,
    Warning_,
    ignore_progress,
)
from .walk import WalkOptions

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
    reembed: bool = False  # a model change re-embeds beside the old vectors (else refused)


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
    refuse_unknown_roots(roots, library)
    models = register_models(library, encoders, config, options.reembed, progress)
    encodings = {m.value: str(encoders.encoding(m)) for m in Modality}
    run_id = library.start_run([str(r) for r in roots], encodings)
    walked = Walked(roots, options.walk, library, progress)
    todo = _reembed_todo(library, models)
    surveyed = survey(walked.files(), library, options.plan, todo)
    progress(
        Planned(
            len(surveyed.seen),
            surveyed.unchanged,
            len(surveyed.candidates),
            surveyed.candidate_bytes,
        )
    )
    run = _Run(surveyed, library, encoders, config, options, progress, models)
    interrupted = run.execute(options.stop)
    removed = 0
    if not interrupted:
        removed = sweep(library, roots, surveyed.seen, walked, progress)
        library.set_offline([str(r) for r in roots], walked.offline)
        run.settle_reembeds()
        finish_reembeds(library, models, progress)
    library.save()
    tally = run.tally
    counts = RunCounts(
        tally.added,
        tally.updated,
        surveyed.unchanged,
        tally.reused,
        removed,
        tally.failed,
        walked.kept,
    )
    status = "interrupted" if interrupted else ("offline" if walked.offline else "finished")
    # "auto" is settled when a tower first runs (it may measure): record what ran
    used = {m.value: str(encoders.encoding(m)) for m in Modality}
    library.finish_run(run_id, counts, status, used)
    embedded = run.assembler.embedded
    seconds = time.monotonic() - started
    finished = Finished(
        counts, embedded, seconds, interrupted, tally.reasons, tuple(walked.offline)
    )
    progress(finished)
    return finished


def modality_recipe(modality: Modality, encoders: Embedder, config: Config) -> str:
    """What the library records with a modality's model id (see indexers.models)."""
    del encoders  # the back-end and dtype are provenance, recorded per run
    return model_recipe(modality, config)


def _reembed_todo(library: Library, models: ModelPlan) -> set[str]:
    """Paths of the files whose old vectors still need a re-embedded replacement."""
    return {path for m in models.reembed for path in library.reembed_paths(m)}


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
        models: ModelPlan,
    ) -> None:
        self.library, self.encoders, self.progress = library, encoders, progress
        self.shadow = models.reembed
        # what the catalog held for the files to check: a failure must not undo a good row
        self.known = {str(c.found.path): c.record for c in surveyed.candidates if c.record}
        self.attempted: dict[Modality, set[str]] = {m: set() for m in self.shadow}
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
        self.assembler.collect()  # vectors the GPU finished while this thread waited
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
            for target in outcome.targets:
                stored = self._stored(outcome.content_hash, target)
                if stored is not None:
                    outcome.reused[target] = stored
                elif target in self.shadow:
                    self.attempted[target].add(path)
            index, decode = self.assembler.add_unit(outcome)
            for target in decode:
                self._submit(index, target)

    def _stored(self, content_hash: str, target: Modality) -> tuple[StoredSegment, ...] | None:
        """Vectors already made for this content: the re-embedded ones for a modality being
        re-embedded, else the serving ones."""
        if target in self.shadow:
            return self.library.reembedded_for_hash(content_hash, target)
        model_id = self.encoders.model_id(target)
        return self.library.segments_for_hash(content_hash, target, model_id)

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
        ready = [item for item in self._ready + self.assembler.take_ready() if self._writes(item)]
        self._ready = []
        if ready:
            self.library.write_batch([item.row for item in ready], self.shadow)
            self.tally.count(ready)

    def _writes(self, item: Completed) -> bool:
        """False for a failure of a file whose indexed content did not change (permissions, a
        time-out, a crash, a re-embed's new model): its row and vectors stay as they are, and
        the file is checked again at the next run (its row keeps the identity it had)."""
        row = item.row
        record = self.known.get(row.path)
        if not isinstance(row, FailedFile) or record is None:
            return True
        if record.status is not FileStatus.INDEXED:
            return True
        if row.content_hash is not None and row.content_hash != record.content_hash:
            return True  # the content changed and cannot be embedded: it is a failed file now
        for modality in self.shadow:
            self.library.record_reembed_failure(row.path, modality, row.reason, row.detail)
        self.progress(
            Warning_(row.path, f"{row.detail}; its indexed vectors are kept ({row.reason})")
        )
        return False

    def settle_reembeds(self) -> None:
        """A file this run tried to re-embed that still has no new vectors (its sound track
        failed, say) is recorded as failed under the new model, so the re-embed can finish."""
        for modality in self.shadow:
            for path in self.library.reembed_paths(modality):
                if path in self.attempted[modality]:
                    self.library.record_reembed_failure(
                        path, modality, "no_vectors", "the new model gave it no vectors"
                    )
