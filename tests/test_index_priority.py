"""`lbsearch index` runs below searches ([index] nice): a query on the same cores comes first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsearch.cli.index import run_below_searches
from lbsearch.cli.main import app
from lbsearch.errors import ConfigError
from lbsearch.testing.samples import write_sample_media

REPORT_NICENESS = (
    "import os, sys\n"
    "from lbsearch.cli.index import run_below_searches\n"
    "run_below_searches(int(sys.argv[1]))\n"
    "print(os.getpriority(os.PRIO_PROCESS, 0))\n"
)


def _niceness_after(started_at: int, nice: int) -> int:
    """The niceness of a new process started `started_at` nicer than this one, once it ran
    run_below_searches(nice)."""
    done = subprocess.run(
        ["nice", "-n", str(started_at), sys.executable, "-c", REPORT_NICENESS, str(nice)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no Unix niceness here")
def test_the_indexer_lowers_its_priority_and_a_nicer_start_stays() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)  # the test run's own (os.nice is stubbed here)
    assert _niceness_after(0, 10) == max(base, 10)
    assert _niceness_after(0, 0) == base, "0 leaves the priority as started"
    assert _niceness_after(15, 10) == min(19, base + 15), "a nicer start is not raised"
    assert _niceness_after(0, 19) == 19


@pytest.mark.parametrize("nice", [-1, 20])
def test_a_niceness_outside_0_to_19_is_refused(nice: int, lowered_priority: list[int]) -> None:
    with pytest.raises(ConfigError, match=r"\[index\] nice must be 0 to 19"):
        run_below_searches(nice)
    assert lowered_priority == []


def test_lbsearch_index_runs_at_the_configured_niceness(
    tiny_config: Path, tmp_path: Path, lowered_priority: list[int]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(tiny_config.read_text() + "[index]\nnice = 7\n")
    media = tmp_path / "media"
    write_sample_media(media)
    library = tmp_path / "library"
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(config),
            "index",
            str(media / "sunset_beach.jpg"),
            "--library",
            str(library),
        ],
    )
    assert result.exit_code == 0, result.output
    assert lowered_priority == [0, 7]  # asked where it stands (0 here), then 7 nicer
