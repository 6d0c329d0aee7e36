"""Rich rendering of indexing progress and the end-of-run summary."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from lbsearch.indexers.progress import Event, Finished, Planned

err = Console(stderr=True, highlight=False)


class RichProgress:
    """Bars for hashing, files and segments on a terminal; silent (but for warnings) in pipes.

    Hashing (reading new and changed files) runs while the first files are already decoded and
    embedded, so the bars move together; the hashing bar counts bytes, the others items."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.library = ""
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
            disable=not enabled,
        )
        self.hashing = self._task("hashing")
        self.files = self._task("files")
        self.segments = self._task("segments")
        self.failures = 0

    def _task(self, name: str) -> TaskID:
        return self.bar.add_task(name, total=None, count="", rate="", visible=False)

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        from lbsearch.indexers import progress as p

        if isinstance(event, p.Planned):
            self._planned(event)
        elif isinstance(event, p.Hashed):
            self._advance(self.hashing, event.bytes, _bytes_count)
        elif isinstance(event, p.Skipped):
            task = self.bar.tasks[self.files]
            self.bar.update(self.files, total=max(0, (task.total or 1) - 1))
            self._advance(self.files, 0)
        elif isinstance(event, p.FileDone | p.FileFailed):
            self.failures += isinstance(event, p.FileFailed)
            label = f"[red]{self.failures} failed[/]" if self.failures else ""
            self.bar.update(self.files, rate=label)
            self._advance(self.files, 1)
        elif isinstance(event, p.SegmentsEmbedded):
            self._advance(self.segments, event.count)
            task = self.bar.tasks[self.segments]
            self.bar.update(self.segments, rate=f"{task.speed or 0:.2f}/s")
        elif isinstance(event, p.Warning_):
            err.print(
                f"[yellow]warning:[/] {event.path}: {event.detail}", markup=True, highlight=False
            )

    def _planned(self, event: Planned) -> None:
        description = f"files ({event.unchanged} unchanged)"
        self.bar.update(self.files, total=event.to_check, visible=True, description=description)
        self._advance(self.files, 0)
        self.bar.update(self.segments, visible=True)
        if event.check_bytes:
            self.bar.update(self.hashing, total=event.check_bytes, visible=True)
            self._advance(self.hashing, 0, _bytes_count)

    def _advance(
        self,
        task_id: TaskID,
        amount: float,
        count: Callable[[float, float | None], str] | None = None,
    ) -> None:
        self.bar.update(task_id, advance=amount)
        task = self.bar.tasks[task_id]
        self.bar.update(task_id, count=(count or _items_count)(task.completed, task.total))


def _items_count(done: float, total: float | None) -> str:
    return f"{int(done)}/{int(total)}" if total is not None else str(int(done))


def _bytes_count(done: float, total: float | None) -> str:
    return f"{_size(done)}/{_size(total or 0)}"


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def summary_table(finished: Finished, library: str) -> None:
    counts = finished.counts
    table = Table(title=f"lbsearch index — {library}", show_header=False)
    for label, value in (
        ("added", counts.added),
        ("updated", counts.updated),
        ("unchanged", counts.unchanged),
        ("reused vectors (renamed or duplicate)", counts.reused),
        ("removed (gone from disk)", counts.removed),
        ("failed", counts.failed),
        ("kept offline (folder not listed)", counts.offline),
        ("segments embedded", finished.segments_embedded),
        ("time", f"{finished.seconds:.1f} s"),
    ):
        table.add_row(label, str(value))
    for reason, count in sorted(finished.failures_by_reason.items()):
        table.add_row(f"  failed: {reason}", str(count))
    for folder in finished.offline:
        table.add_row(
            Text(f"  offline: {folder.folder}", style="yellow"),
            Text(f"{folder.files} kept — {folder.reason}"),
        )
    if finished.interrupted:
        table.add_row("[yellow]interrupted[/]", "work done so far is kept; run again to finish")
    Console(file=sys.stderr if not sys.stdout.isatty() else sys.stdout).print(table)
