"""Rich rendering of indexing progress, the end-of-run summary and `lbsearch status`."""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from lbsearch.indexers.progress import Event, Finished
    from lbsearch.library import LibraryStats

err = Console(stderr=True, highlight=False)


class RichProgress:
    """Bars for files and segments on a terminal; silent (but for warnings) in pipes and logs."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.library = ""
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
            disable=not enabled,
        )
        self.files = self.bar.add_task("files", total=None, rate="", visible=False)
        self.segments = self.bar.add_task("segments", total=None, rate="", visible=False)
        self.failures = 0

    def __enter__(self) -> RichProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        from lbsearch.indexers import progress as p

        if isinstance(event, p.Planned):
            total = event.to_embed + event.to_reuse + event.failed
            self.bar.update(
                self.files,
                total=total,
                visible=True,
                description=f"files ({event.unchanged} unchanged)",
            )
            self.bar.update(self.segments, visible=True)
        elif isinstance(event, p.FileDone | p.FileFailed):
            self.failures += isinstance(event, p.FileFailed)
            label = f"[red]{self.failures} failed[/]" if self.failures else ""
            self.bar.update(self.files, advance=1, rate=label)
        elif isinstance(event, p.SegmentsEmbedded):
            self.bar.update(self.segments, advance=event.count)
            task = self.bar.tasks[self.segments]
            self.bar.update(self.segments, rate=f"{task.speed or 0:.2f}/s")
        elif isinstance(event, p.Warning_):
            err.print(
                f"[yellow]warning:[/] {event.path}: {event.detail}", markup=True, highlight=False
            )


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
        ("segments embedded", finished.segments_embedded),
        ("time", f"{finished.seconds:.1f} s"),
    ):
        table.add_row(label, str(value))
    for reason, count in sorted(finished.failures_by_reason.items()):
        table.add_row(f"  failed: {reason}", str(count))
    if finished.interrupted:
        table.add_row("[yellow]interrupted[/]", "work done so far is kept; run again to finish")
    Console(file=sys.stderr if not sys.stdout.isatty() else sys.stdout).print(table)


def print_status(stats: LibraryStats) -> None:
    console = Console()
    catalog = stats.catalog
    console.print(
        f"library [bold]{stats.root}[/]: {catalog.files} files, {catalog.segments} segments, {_size(stats.total_bytes)}"
    )
    table = Table("modality", "indexed", "failed", "stale", "segments", "model", "index")
    infos = {info.modality: info for info in stats.indices}
    for m in catalog.modalities:
        info = infos.get(m.modality)
        index = (
            f"{info.kind or '-'} {'' if info.up_to_date else '[yellow](rebuilt at next index)[/]'}"
            if info
            else "-"
        )
        files = {status.value: n for status, n in m.files.items()}
        table.add_row(
            m.modality.value,
            str(files.get("indexed", 0)),
            str(files.get("failed", 0)),
            str(files.get("stale", 0)),
            str(m.segments),
            m.state.model_id if m.state else "-",
            index,
        )
    console.print(table)
    for root in catalog.roots:
        console.print(
            f"root {root.root}: {root.files} files, last indexed {_when(root.last_indexed_at)}"
        )
    if catalog.last_run:
        run = catalog.last_run
        console.print(f"last run: {run.status}, started {_when(run.started_at)}, {run.counts}")
    if catalog.failed_files:
        failed = Table("failed file", "reason", "detail", title="failed files")
        for record in catalog.failed_files:
            failed.add_row(record.path, record.reason or "", record.detail or "")
        console.print(failed)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
