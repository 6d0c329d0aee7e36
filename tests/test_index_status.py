"""`lbsearch status`: failed paths whole at any width, run totals in words, --json, and every
failed file reachable past the first 100."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsearch.catalog import FailedFile, RunCounts
from lbsearch.cli.main import app
from lbsearch.config import Config

runner = CliRunner()
DEEP = "/media/archive/2019/holidays/badcopy-from-the-old-laptop/really/quite/deep/folder"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    from lbsearch.library import Library

    root = tmp_path / "library"
    failed = [
        FailedFile(f"{DEEP}/text.{ext}", "/media", 10, 1, "corrupt", "FFmpeg cannot read it")
        for ext in ("jpg", "mp4", "wav")
    ]
    failed += [
        FailedFile(f"{DEEP}/more/file_{i:03d}.png", "/media", 10, 1, "empty_file", "0 bytes")
        for i in range(102)
    ]
    with Library.open(root, config=Config(), write=True) as lib:
        run = lib.start_run(["/media"], {})
        lib.write_batch(failed)
        lib.finish_run(run, RunCounts(added=7, unchanged=3, reused=1, failed=105), "finished")
    return root


def _status(library: Path, *args: str) -> str:
    result = runner.invoke(app, ["status", "--library", str(library), *args], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def _first_column(out: str) -> str:
    """The failed-file column of the table, its wrapped pieces joined back together."""
    table = out[out.index("failed files") :]
    return "".join(line.split("│")[1].strip() for line in table.splitlines() if "│" in line)


def test_failed_paths_are_wrapped_never_cut(library: Path) -> None:
    out = _status(library)
    assert "…" not in out
    column = _first_column(out)
    for ext in ("jpg", "mp4", "wav"):
        assert f"{DEEP}/text.{ext}" in column


def test_run_totals_are_words_not_a_python_object(library: Path) -> None:
    out = _status(library)
    assert "RunCounts(" not in out
    assert "7 added" in out and "3 unchanged" in out and "1 reused" in out and "105 failed" in out


def test_more_than_100_failed_files_says_how_to_see_them_all(library: Path) -> None:
    out = _status(library)
    assert "5 more failed files" in out and "--all-failed" in out
    everything = _first_column(_status(library, "--all-failed"))
    assert all(f"file_{i:03d}.png" in everything for i in range(102))


def test_json_output(library: Path) -> None:
    data = json.loads(_status(library, "--json"))
    assert data["library"] == str(library)
    assert data["failed_total"] == 105 and len(data["failed_files"]) == 100
    assert {"path": f"{DEEP}/text.mp4", "reason": "corrupt", "detail": "FFmpeg cannot read it"} in (
        data["failed_files"]
    )
    assert data["last_run"]["counts"]["added"] == 7
    assert data["failures_by_reason"] == {"empty_file": 102, "corrupt": 3}
    every = json.loads(_status(library, "--json", "--all-failed"))
    assert len(every["failed_files"]) == 105
