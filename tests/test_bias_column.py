"""The hubness bias column inside FAISS: exact scores, incremental = full recomputation, a
changed bank recomputed from stored vectors, and kill -9 during that recomputation (of the text
bank's column, and of the file-bias column with the library's sample drawn again)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lbsearch.config import Config, IndexConfig, RelevanceConfig
from lbsearch.library import Library
from lbsearch.search.calibration import install_file_sample
from lbsearch.testing.library import assert_library_consistent, indexed_file, unit_vectors
from lbsearch.types import Modality
from lbsearch.vectors.bias import Bank, bank_path, read_bank, segment_biases
from lbsearch.vectors.filesample import read_file_sample, sample_path
from lbsearch.vectors.kinds import BiasKind
from lbsearch.vectors.store import read_index_meta

IMG = Modality.IMAGE
MODEL = "img-1"
DIM = 32


def bank(seed: int, k: int = 5) -> Bank:
    return Bank(f"bank-{seed}-{k}", unit_vectors(200, DIM, seed=100 + seed), k)


def pictures(vectors: np.ndarray, start: int = 0) -> list:  # type: ignore[type-arg]
    return [
        indexed_file(f"/r/{start + i}.jpg", v[None, :], model_id=MODEL, root="/r")
        for i, v in enumerate(vectors)
    ]


def open_library(root: Path, index: IndexConfig | None = None, write: bool = True) -> Library:
    return Library.open(root, config=Config(index=index or IndexConfig()), write=write)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with open_library(tmp_path / "lib") as lib:
        lib.set_modality(IMG, MODEL, "1", DIM)
    return tmp_path / "lib"


def stored(lib: Library) -> tuple[np.ndarray, np.ndarray]:
    chunk = lib.catalog.vectors_by_ids(IMG, lib.catalog.segment_ids(IMG).ids)
    return chunk.ids, chunk.vectors


@pytest.mark.parametrize("exact_max", [100000, 100])  # a flat index, and an IVF one
def test_the_bias_dimension_scores_exactly_cosine_minus_alpha_bias(
    root: Path, exact_max: int
) -> None:
    config = IndexConfig(exact_max_segments=exact_max, nprobe=10**6)  # IVF: scan every list
    the_bank = bank(1)
    with open_library(root, config) as lib:
        lib.use_bank(IMG, the_bank)
        lib.write_batch(pictures(unit_vectors(900, DIM, seed=2)))
        lib.save()
    with open_library(root, config, write=False) as lib:
        ids, vectors = stored(lib)
        queries = unit_vectors(3, DIM, seed=9)
        found = lib.search(IMG, queries, len(ids), alpha=0.7)
        expected = queries @ vectors.T - 0.7 * segment_biases(the_bank.vectors, vectors, 5)
        for row in range(3):
            positions = np.searchsorted(ids, found.ids[row])
            assert np.allclose(found.scores[row], expected[row, positions], atol=1e-5)
            assert np.all(np.diff(found.scores[row]) <= 1e-6), "best first"
        raw = lib.search(IMG, queries, 5, alpha=0.0)  # alpha 0: the plain cosine
        assert np.allclose(raw.scores, np.sort(queries @ vectors.T, axis=1)[:, ::-1][:, :5])


def test_incremental_indexing_gives_the_same_biases_as_a_full_recomputation(root: Path) -> None:
    data = unit_vectors(600, DIM, seed=3)
    with open_library(root) as lib:
        lib.use_bank(IMG, bank(1))
        for lo in range(0, 600, 150):  # four runs' batches, each followed by the index
            lib.write_batch(pictures(data[lo : lo + 150], lo))
        ids, _ = stored(lib)
        incremental = lib.segment_biases(IMG, ids)
        lib._indices.rebuild(IMG, "a full recomputation")
        full = lib.segment_biases(IMG, ids)
    _, vectors = stored_of(root)
    assert np.allclose(incremental, full, atol=1e-6)
    assert np.allclose(full, segment_biases(bank(1).vectors, vectors, 5), atol=1e-6)


def stored_of(root: Path) -> tuple[np.ndarray, np.ndarray]:
    with open_library(root, write=False) as lib:
        return stored(lib)


def test_a_new_bank_recomputes_every_bias_from_the_stored_vectors(root: Path) -> None:
    with open_library(root) as lib:
        lib.use_bank(IMG, bank(1))
        lib.write_batch(pictures(unit_vectors(300, DIM, seed=4)))
    ids, before = stored_of(root)
    with open_library(root) as lib:
        lib.use_bank(IMG, bank(2, k=7))  # a changed text tower or caption list: one pass
        assert np.allclose(
            lib.segment_biases(IMG, ids), segment_biases(bank(2).vectors, before, 7), atol=1e-6
        )
    meta = read_index_meta(root / "vectors" / "image.faiss")
    assert meta is not None and meta.bias == "bank-2-7"
    assert np.array_equal(stored_of(root)[1], before), "nothing re-embedded or changed"
    assert_library_consistent(root, saved=True)


def test_a_reader_uses_a_new_bank_in_memory_and_leaves_the_files(root: Path) -> None:
    with open_library(root) as lib:
        lib.use_bank(IMG, bank(1))
        lib.write_batch(pictures(unit_vectors(50, DIM, seed=5)))
    with open_library(root, write=False) as lib:
        lib.use_bank(IMG, bank(2))
        ids, vectors = stored(lib)
        assert np.allclose(
            lib.segment_biases(IMG, ids), segment_biases(bank(2).vectors, vectors, 5), atol=1e-6
        )
    found = read_bank(bank_path(root / "vectors", "image"))
    assert found is not None and found.fingerprint == "bank-1-5"


KILLER = """
import os, signal, sys
from pathlib import Path
import numpy as np
from lbsearch.config import Config
from lbsearch.library import Library, indices, references
from lbsearch.testing.library import unit_vectors
from lbsearch.types import Modality
from lbsearch.vectors import fileformat
from lbsearch.vectors.bias import Bank

where, calls, what = sys.argv[1], int(sys.argv[2]), sys.argv[4]
seen = [0]
if where == "rows":  # while the biases are being recomputed, chunk by chunk
    real = references.References.rows
    def rows(self, *args):
        seen[0] += 1
        if seen[0] > calls:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *args)
    references.References.rows = rows
else:  # half-way through writing the new index file
    real_write = fileformat.VectorIndex.write
    def write(self, handle):
        handle.write(b"x" * 1000)
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    fileformat.VectorIndex.write = write
indices._ADD_CHUNK = 100  # many chunks, so the kill lands inside the rebuild
with Library.open(Path(sys.argv[3]), config=Config(), write=True) as lib:
    if what == "bank":
        lib.use_bank(Modality.IMAGE, Bank("bank-2-5", unit_vectors(200, 32, seed=102), 5))
    else:  # the sample of the library's own segments, drawn again (another size)
        lib.use_file_sample(lib.draw_file_sample(300, 5))
print("not killed")
"""


@pytest.mark.parametrize("what", ["bank", "sample"])
@pytest.mark.parametrize(("where", "calls"), [("rows", 0), ("rows", 3), ("write", 0)])
def test_kill_9_while_recomputing_leaves_a_consistent_library(
    root: Path, tmp_path: Path, where: str, calls: int, what: str
) -> None:
    with open_library(root) as lib:
        lib.use_bank(IMG, bank(1))
        lib.write_batch(pictures(unit_vectors(1000, DIM, seed=6)))
        install_file_sample(lib, RelevanceConfig(bank_k=5, file_sample=100))
    if what == "sample":
        check_file_biases_after_a_kill(root, tmp_path, where, calls)
        return
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER))
    done = subprocess.run(
        [sys.executable, str(script), where, str(calls), str(root), what],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    # A reader sees an index whose every bias matches the bank the library holds now.
    ids, vectors = stored_of(root)
    saved_bank = read_bank(bank_path(root / "vectors", "image"))
    assert saved_bank is not None
    with open_library(root, write=False) as lib:
        expected = segment_biases(saved_bank.vectors, vectors, saved_bank.k)
        assert np.allclose(lib.segment_biases(IMG, ids), expected, atol=1e-6)
    # The next writer finishes the job: files up to date, the same biases as a full pass.
    with open_library(root) as lib:
        lib.use_bank(IMG, bank(2))
    assert_library_consistent(root, saved=True)
    meta = read_index_meta(root / "vectors" / "image.faiss")
    assert meta is not None and meta.bias == "bank-2-5"
    with open_library(root, write=False) as lib:
        expected = segment_biases(bank(2).vectors, vectors, 5)
        assert np.allclose(lib.segment_biases(IMG, ids), expected, atol=1e-6)


def check_file_biases_after_a_kill(root: Path, tmp_path: Path, where: str, calls: int) -> None:
    """As above, for the file-bias column and the library's sample drawn again."""
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER))
    done = subprocess.run(
        [sys.executable, str(script), where, str(calls), str(root), "sample"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    ids, vectors = stored_of(root)
    saved = read_file_sample(sample_path(root / "vectors"))
    assert saved is not None
    with open_library(root, write=False) as lib:
        (info,) = lib.index_info()
        assert not info.up_to_date, "status: the index file names the sample it replaced"
        expected = saved.biases(ids, vectors)
        assert np.allclose(lib.segment_biases(IMG, ids, BiasKind.FILE), expected, atol=1e-6)
    with open_library(root) as lib:  # the next writer: the index follows the saved sample
        install_file_sample(lib, RelevanceConfig(bank_k=5, file_sample=300))
        sample = lib.file_sample()
    assert sample is not None and sample.size == 300
    assert_library_consistent(root, saved=True)
    meta = read_index_meta(root / "vectors" / "image.faiss")
    assert meta is not None and meta.file_bias == sample.fingerprint
    with open_library(root, write=False) as lib:
        expected = sample.biases(ids, vectors)
        assert np.allclose(lib.segment_biases(IMG, ids, BiasKind.FILE), expected, atol=1e-6)
