"""`lbsearch index` and `lbsearch status` end to end, with tiny LanguageBind checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbsearch.testing.samples import write_sample_media


def _lbsearch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbsearch", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_index_then_status_then_no_change_rerun(tiny_config: Path, tmp_path: Path) -> None:
    media = tmp_path / "media"
    write_sample_media(media)
    (media / "empty.png").touch()
    library = tmp_path / "library"
    first = _lbsearch(tiny_config, "index", str(media), "--library", str(library))
    assert first.returncode == 1, first.stderr  # one file failed: exit status says so
    assert "Traceback" not in first.stderr
    assert "added" in first.stdout + first.stderr
    status = _lbsearch(tiny_config, "status", "--library", str(library))
    assert status.returncode == 0, status.stderr
    for modality in ("image", "video", "audio", "depth", "thermal"):
        assert modality in status.stdout
    assert "empty_file" in status.stdout
    again = _lbsearch(tiny_config, "index", str(media), "--library", str(library))
    assert again.returncode == 0, again.stderr  # failed before and unchanged: not retried
    assert "unchanged" in again.stdout + again.stderr


def test_second_indexer_on_the_same_library_is_refused(tiny_config: Path, tmp_path: Path) -> None:
    from lbsearch.config import load_config
    from lbsearch.library import Library

    library = tmp_path / "library"
    with Library.open(library, config=load_config(), write=True):
        done = _lbsearch(tiny_config, "index", str(tmp_path), "--library", str(library))
    assert done.returncode != 0
    assert "another lbsearch index is running" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_of_a_missing_library_says_what_to_do(tiny_config: Path, tmp_path: Path) -> None:
    done = _lbsearch(tiny_config, "status", "--library", str(tmp_path / "nowhere"))
    assert done.returncode != 0
    assert "lbsearch index" in done.stderr
