"""The warm search's parts for bench/query.py, and the same figures for another revision.

`PhaseClock` wraps an open library's methods with timers, so each query's search time (all
but the text tower) splits into:

- index: the vector index (FAISS scans, exact re-scores of a few filtered segments, the
  segments' bias columns), without the catalog reads made inside it;
- catalog: the catalog's read queries (SQL, records);
- engine: the rest (roll-up to files, scoring, ranking, hits, moments).

`--compare-with REV` (bench/query.py) runs the warm figures of the working tree and of git
revision REV (its `lbsearch` package unpacked to a temporary folder) in child processes, rounds
interleaved, on the same library, so a busy machine slows both alike; it prints their ratios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

INDEX_METHODS = ("search", "segment_biases", "segment_sample", "null_moments", "index_size")
CATALOG_METHODS = (
    "segments_by_ids",
    "segment_files",
    "segment_windows",
    "segment_ids_matching",
    "vectors_by_ids",
    "modality_states",
    "modality_state",
    "offline_paths",
    "file_by_path",
    "files_by_paths",
    "sample_vectors",
    "segment_ids",
)
PHASES = ("index", "catalog", "engine")


class PhaseClock:
    """Seconds spent per phase; a wrapped call's time excludes the wrapped calls it makes."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []

    def instrument(self, library: Any) -> None:
        for name in INDEX_METHODS:
            self._wrap(library, name, "index")
        for name in CATALOG_METHODS:
            self._wrap(library.catalog, name, "catalog")

    def _wrap(self, owner: Any, name: str, phase: str) -> None:
        inner = getattr(owner, name, None)
        if inner is None:
            return  # a method this revision does not have

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._inner.append(0.0)
            try:
                return inner(*args, **kwargs)
            finally:
                total = time.perf_counter() - start
                self.spent[phase] += total - self._inner.pop()
                if self._inner:
                    self._inner[-1] += total

        setattr(owner, name, timed)

    def take(self, search_s: float) -> dict[str, float]:
        """This query's seconds per phase (engine: `search_s` less the others); resets."""
        parts = {p: self.spent.get(p, 0.0) for p in PHASES[:2]}
        parts["engine"] = max(0.0, search_s - sum(parts.values()))
        self.spent.clear()
        return parts


def unpack_revision(revision: str, folder: Path) -> Path:
    """The `lbsearch` package of git revision `revision`, unpacked under `folder`."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", revision, "lbsearch"], cwd=repo, capture_output=True, check=True
    ).stdout
    target = folder / f"rev-{revision.replace('/', '_')}"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def warm_in_child(code: Path | None, args: list[str]) -> dict[str, Any]:
    """bench/query.py --warm-child ARGS in a new process, importing lbsearch from `code`
    (None: as installed); its JSON answer."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("query.py")), "--warm-child", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"warm child ({code or 'working tree'}) failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.splitlines()[-1]))


def interleaved(
    codes: dict[str, Path | None], args: Callable[[int], list[str]], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Per code: the per-query samples (ms) of each measure, over `rounds` child runs each,
    alternating codes (round r runs `args(r)`)."""
    samples: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in codes}
    for r in range(rounds):
        for name, code in codes.items():
            for measure, values in warm_in_child(code, args(r)).items():
                samples[name][measure] += values
    return samples


def median(values: list[float]) -> float:
    return float(np.percentile(values, 50)) if values else float("nan")
