"""`lbsearch index`: walk -> probe/dedupe -> decode pool -> per-modality batches -> embed ->
write (one transaction per batch, then the in-memory index) -> sweep -> save.

Decoding runs in worker processes while the encoder works on this thread. Each written batch is
committed to the catalog before it touches an index, so a crash loses at most the batches in
flight and the next run (which repairs the indices from the catalog) completes the work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lbsearch.catalog import FailedFile, IndexedFile, RunCounts
from lbsearch.config import Config
from lbsearch.embedder import Embedder
from lbsearch.library import Library
from lbsearch.media.versions import preprocess_version
from lbsearch.types import Modality

from .assemble import Assembler
from .plan import Plan, PlanOptions, make_plan
from .progress import FileFailed, Finished, Planned, Progress, Swept, Warning_, ignore_progress
from .walk import FoundFile, WalkOptions, WalkProblem, walk


@dataclass(frozen=True)
class IndexOptions:
    walk: WalkOptions = field(default_factory=WalkOptions)
    plan: PlanOptions = field(default_factory=PlanOptions)
    stop: threading.Event = field(default_factory=threading.Event, compare=False)


class _Tally:
    """Run totals, counted as rows are committed."""

    def __init__(self, plan: Plan) -> None:
        self.known = {str(u.found.path) for u in plan.units if u.known}
        self.reusing = {str(u.found.path) for u in plan.units if not u.to_decode}
        self.added = self.updated = self.reused = self.failed = 0
        self.reasons: dict[str, int] = {}

    def count(self, rows: Sequence[IndexedFile | FailedFile]) -> None:
        for row in rows:
            if isinstance(row, FailedFile):
                self.failed += 1
                self.reasons[row.reason] = self.reasons.get(row.reason, 0) + 1
                continue
            self.added += row.path not in self.known
            self.updated += row.path in self.known
            self.reused += row.path in self.reusing


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
    run_id = library.catalog.start_run([str(r) for r in roots])
    for modality in Modality:
        library.set_modality(
            modality, encoders.model_id(modality), _recipe(modality, encoders, config)
        )
    swept_roots = [r for r in roots if r.exists()]
    for missing in set(roots) - set(swept_roots):
        progress(Warning_(str(missing), "not found: skipped (its indexed files are kept)"))
    plan = make_plan(
        _found(swept_roots, options.walk, progress), library, encoders, config, options.plan
    )
    progress(_planned(plan))
    for failure in plan.failures:
        progress(FileFailed(failure.path, failure.reason, failure.detail))
    tally = _Tally(plan)
    # segments gathered per encoder call; the embedder splits them into its device's batches
    assembler = Assembler(plan.units, encoders, config.runtime.batch_size or 32, progress)
    interrupted = _embed(plan, assembler, library, config, options.stop, tally)
    removed = 0 if interrupted else _sweep(library, swept_roots, plan, progress)
    library.save()
    counts = RunCounts(
        tally.added, tally.updated, plan.unchanged, tally.reused, removed, tally.failed
    )
    library.catalog.finish_run(run_id, counts, status="interrupted" if interrupted else "finished")
    finished = Finished(
        counts, assembler.embedded, time.monotonic() - started, interrupted, tally.reasons
    )
    progress(finished)
    return finished


def _recipe(modality: Modality, encoders: Embedder, config: Config) -> str:
    """Recorded with the model id: a change of preprocessing, back-end or dtype re-embeds the
    modality (int8 or bf16 vectors are not interchangeable with float32 ones)."""
    return f"{preprocess_version(modality, config)};{encoders.encoding(modality)}"


def _found(roots: Sequence[Path], options: WalkOptions, progress: Progress) -> Iterator[FoundFile]:
    for item in walk(roots, options):
        if isinstance(item, WalkProblem):
            progress(Warning_(str(item.path), item.detail))
        else:
            yield item


def _planned(plan: Plan) -> Planned:
    decode = [u for u in plan.units if u.to_decode]
    return Planned(
        found=len(plan.seen),
        unchanged=plan.unchanged,
        to_embed=len(decode),
        to_reuse=len(plan.units) - len(decode),
        failed=len(plan.failures),
    )


def _embed(
    plan: Plan,
    assembler: Assembler,
    library: Library,
    config: Config,
    stop: threading.Event,
    tally: _Tally,
) -> bool:
    """Decode and embed everything planned; False when done, True when stopped early."""
    from lbsearch.media.pool import DecodeJob, DecodePool

    writer = _Writer(library, tally)
    writer.add(plan.failures)
    writer.add(assembler.take_ready())  # files whose vectors are all reused
    jobs = [
        DecodeJob(unit.found.path, assembler.encoders.media_spec(target), tag=(index, target))
        for index, unit in enumerate(plan.units)
        for target in unit.to_decode
    ]
    with DecodePool(config) as pool:
        for result in pool.imap(jobs):
            index, target = result.job.tag
            assembler.add_decoded(index, target, result.segments, result.error)
            writer.add(assembler.take_ready())
            if stop.is_set():
                return True
    assembler.encode_all()
    writer.add(assembler.take_ready())
    return False


class _Writer:
    """Commits completed files: one transaction per encoder batch (or per group of reused or
    failed files), then the in-memory index follows it."""

    def __init__(self, library: Library, tally: _Tally) -> None:
        self.library, self.tally = library, tally

    def add(self, rows: Sequence[IndexedFile | FailedFile]) -> None:
        if rows:
            self.library.write_batch(rows)
            self.tally.count(rows)


def _sweep(library: Library, roots: Sequence[Path], plan: Plan, progress: Progress) -> int:
    """Forget files under the walked roots that are gone (or now ignored)."""
    gone = [
        record.id
        for root in roots
        for record in library.catalog.iter_files(str(root))
        if record.path not in plan.seen
    ]
    if gone:
        library.delete_files(gone)
        progress(Swept(len(gone)))
    return len(gone)
