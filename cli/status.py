"""`lbsearch status` output: Rich tables for people (paths wrapped, never cut) and --json."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from lbsearch.catalog import RunCounts, RunRecord
    from lbsearch.config import RelevanceConfig
    from lbsearch.library import LibraryStats

from lbsearch.search.status import ALL, FAILED_SHOWN, failed_total, status_json

__all__ = ["ALL", "FAILED_SHOWN", "print_status", "print_status_json", "run_totals", "status_json"]


def print_status(stats: LibraryStats) -> None:
    console = Console(
        highlight=False, width=None if sys.stdout.isatty() else 10_000
    )  # a pipe: no cut
    catalog = stats.catalog
    console.print(
        f"library [bold]{_escape(str(stats.root))}[/]: {catalog.files} files, "
        f"{catalog.segments} segments, {_size(stats.total_bytes)}",
        soft_wrap=True,
    )
    console.print(_modality_table(stats))
    for root in catalog.roots:
        line = f"root {root.root}: {root.files} files, last indexed {_when(root.last_indexed_at)}"
        console.print(Text(line), soft_wrap=True)
    for folder in catalog.offline:
        line = (
            f"offline since {_when(folder.since)}: {folder.folder} ({folder.files} files kept): "
            f"{folder.reason}"
        )
        console.print(Text(line, style="yellow"), soft_wrap=True)
    if catalog.offline:
        console.print(
            "offline files stay searchable; they come back online when a run lists their folder "
            "again, and `lbsearch forget PATH` removes them",
            soft_wrap=True,
            markup=False,
        )
    if catalog.last_run:
        console.print(Text(f"last run: {_run_line(catalog.last_run)}"), soft_wrap=True)
    if catalog.failed_files:
        failed = Table("failed file", "reason", "detail", title="failed files")
        failed.columns[0].overflow = "fold"  # a path is worth more than a tidy row
        failed.columns[1].no_wrap = True
        failed.columns[2].overflow = "fold"
        for record in catalog.failed_files:
            failed.add_row(Text(record.path), record.reason or "", Text(record.detail or ""))
        console.print(failed)
    hidden = failed_total(stats) - len(catalog.failed_files)
    if hidden > 0:
        console.print(
            f"... and {hidden} more failed files: `lbsearch status --all-failed` lists them all",
            soft_wrap=True,
            markup=False,
        )


def print_status_json(stats: LibraryStats, relevance: RelevanceConfig | None = None) -> None:
    # ASCII escapes: paths with undecodable bytes (surrogates) still make valid JSON
    sys.stdout.write(json.dumps(status_json(stats, relevance), indent=2) + "\n")


def _modality_table(stats: LibraryStats) -> Table:
    table = Table("modality", "indexed", "failed", "stale", "segments", "model", "index")
    table.columns[5].overflow = "fold"  # model ids are paths too
    infos = {info.modality: info for info in stats.indices}
    for m in stats.catalog.modalities:
        info = infos.get(m.modality)
        index = "-"
        if info:
            stale = "" if info.up_to_date else " [yellow](rebuilt at next index)[/]"
            index = f"{info.kind or '-'}{stale}"
        files = {status.value: n for status, n in m.files.items()}
        table.add_row(
            m.modality.value,
            str(files.get("indexed", 0)),
            str(files.get("failed", 0)),
            str(files.get("stale", 0)),
            str(m.segments),
            Text(m.state.model_id if m.state else "-"),
            index,
        )
    return table


def run_totals(counts: RunCounts) -> str:
    """`7 added, 0 updated, ...`: a run's totals in words."""
    return ", ".join(f"{value} {name}" for name, value in counts.__dict__.items())


def _run_line(run: RunRecord) -> str:
    ended = f", ended {_when(run.finished_at)}" if run.finished_at else ""
    used = sorted(set(run.encodings.values()))
    encoding = f" with {', '.join(used)}" if used else ""
    return (
        f"{run.status}, started {_when(run.started_at)}{ended}{encoding}: {run_totals(run.counts)}"
    )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
