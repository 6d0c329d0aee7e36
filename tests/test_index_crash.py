"""kill -9 during `lbsearch index` at random moments: the library stays consistent and the next
run completes the work without duplicates."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lbsearch.config import Config
from lbsearch.library import Library
from lbsearch.testing.library import assert_library_consistent
from lbsearch.testing.samples import write_audio

INDEXER = """
import dataclasses
import sys
from pathlib import Path
from lbsearch.config import load_config
from lbsearch.indexers.pipeline import run_index
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders

if __name__ == "__main__":
    config = load_config()
    config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, batch_size=2))
    with Library.open(Path(sys.argv[1]), config=config, write=True) as lib:
        run_index([Path(sys.argv[2])], lib, FakeEncoders(delay_s=0.4), config)
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for i in range(40):
        write_audio(root / f"tone_{i:02d}.wav", seconds=1.0 + (i % 5), tone_hz=200.0 + 20 * i)
    return root


def _run(library: Path, corpus: Path, script: Path, kill_after: float | None) -> int:
    process = subprocess.Popen([sys.executable, str(script), str(library), str(corpus)])
    if kill_after is None:
        return process.wait(timeout=300)
    time.sleep(kill_after)
    os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=60)


def _assert_consistent(library: Path) -> int:
    return sum(assert_library_consistent(library, Config()).values())


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_sigkill_at_random_points_then_rerun_completes(corpus: Path, tmp_path: Path) -> None:
    script = tmp_path / "indexer.py"
    script.write_text(INDEXER)
    library = tmp_path / "library"
    rng = random.Random(7)
    for _ in range(3):
        _run(library, corpus, script, kill_after=rng.uniform(2.0, 6.0))
        if (library / "catalog.sqlite").exists():
            _assert_consistent(library)
    assert _run(library, corpus, script, kill_after=None) == 0
    segments = _assert_consistent(library)
    with Library.open(library, config=Config()) as lib:
        files = list(lib.catalog.iter_files())
    assert len(files) == 40 and all(f.status.value == "indexed" for f in files)
    assert segments == 40  # each tone is shorter than one window
