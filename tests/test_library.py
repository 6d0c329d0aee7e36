"""The library folder: location, the writer lock, readers beside a writer, stats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import SegmentFilter
from lbsearch.config import Config, LibraryConfig
from lbsearch.library import (
    LIBRARY_ENV,
    IndexAction,
    Library,
    LibraryError,
    LibraryLockedError,
    WriterLock,
    locate_library,
)
from lbsearch.testing.library import assert_library_consistent
from lbsearch.testing.library import image_files as batch
from lbsearch.types import Modality
from lbsearch.vectors import VectorIndexError

IMG = Modality.IMAGE


def hold_lock_in_child(root: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import time
        from lbsearch.library import Library
        lib = Library.open({str(root)!r}, write=True)
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def test_location_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIBRARY_ENV, raising=False)
    configured = LibraryConfig(path=str(tmp_path / "from-config"))
    default = locate_library(None, LibraryConfig())
    assert default.source == "default" and default.path.is_absolute()
    assert locate_library(None, configured).source == "config [library] path"
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "from-env"))
    env = locate_library(None, configured)
    assert (env.path, env.source) == (tmp_path / "from-env", "$LBSEARCH_HOME")
    explicit = locate_library(tmp_path / "flag", configured)
    assert (explicit.path, explicit.source) == (tmp_path / "flag", "--library")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert locate_library("~/lib").path == tmp_path / "lib"


def test_writer_creates_the_layout_and_a_reader_sees_it(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    with Library.open(root, write=True) as lib:
        lib.set_modality(IMG, "m", "1", 16)
        lib.write_batch(batch(0, 30))
    assert sorted(p.name for p in root.iterdir()) == ["catalog.sqlite", "lock", "vectors"]
    assert (root / "vectors" / "image.faiss").is_file()
    with Library.open(root) as reader:
        stats = reader.stats()
        assert (stats.catalog.files, stats.catalog.segments) == (30, 30)
        assert stats.indices[0].up_to_date and stats.vectors_bytes > 30 * 16 * 4
        assert stats.total_bytes == stats.catalog_bytes + stats.vectors_bytes
        query = reader.catalog.vectors_by_ids(IMG, [5]).vectors
        assert reader.search(IMG, query, 1).ids[0, 0] == 5
        narrowed = reader.search(IMG, query, 3, where=SegmentFilter(path_globs=("*/1?.jpg",)))
        assert set(narrowed.ids[0]) <= set(range(11, 21))
        with pytest.raises(LibraryError, match="read-only"):
            reader.write_batch(batch(100, 1))


def test_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    child = hold_lock_in_child(root)
    try:
        with pytest.raises(LibraryLockedError) as err:
            Library.open(root, write=True)
        assert f"another lbsearch index is running on {root} (pid {child.pid})" in str(err.value)
        assert "wait for it" in err.value.hint
        started = time.monotonic()
        with pytest.raises(LibraryLockedError, match=r"waited 0.3 s"):
            Library.open(root, write=True, lock_timeout_s=0.3)
        assert time.monotonic() - started >= 0.3
        with Library.open(root) as reader:  # readers never wait for the writer
            assert reader.stats().catalog.files == 0
    finally:
        child.kill()
        child.wait()
    # the lock died with its holder (SIGKILL): a new writer gets in at once
    with Library.open(root, write=True) as lib:
        assert lib.writable


def test_a_waiting_writer_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    child = hold_lock_in_child(root)
    try:
        killer = subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -TERM {child.pid}"])
        with Library.open(root, write=True, lock_timeout_s=20) as lib:
            assert lib.writable
        killer.wait()
    finally:
        child.kill()
        child.wait()


def test_two_writers_in_one_process_conflict_too(tmp_path: Path) -> None:
    first = WriterLock(tmp_path)
    first.acquire()
    second = WriterLock(tmp_path)
    assert not second.try_acquire()
    holder = second.holder()
    assert holder is not None and holder.pid == os.getpid()
    first.release()
    assert second.try_acquire()
    second.release()


def test_refuses_folders_that_are_not_libraries(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"x")
    with pytest.raises(LibraryError, match="not an lbsearch library and not empty") as err:
        Library.open(photos, write=True)
    assert "--library" in err.value.hint
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(LibraryError, match="is a file"):
        Library.open(afile, write=True)
    with pytest.raises(LibraryError, match="no lbsearch library") as err:
        Library.open(tmp_path / "nothing")
    assert "lbsearch index" in err.value.hint


def test_reader_repairs_in_memory_and_the_next_writer_saves(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    with Library.open(root, write=True) as lib:
        lib.set_modality(IMG, "m", "1", 16)
        lib.write_batch(batch(0, 20))
        lib._indices.store.dirty.clear()  # as if killed before the save
        lib._catalog.write_batch(batch(20, 5))
    index_file = root / "vectors" / "image.faiss"
    assert not index_file.exists()  # never saved
    with Library.open(root) as reader:
        assert reader.search(IMG, np.ones((1, 16), np.float32), 3).ids.shape == (1, 3)
        assert reader.index_events[IMG].action is IndexAction.REBUILT
        assert reader.check()[0].consistent and reader.check()[0].index_count == 25
        with pytest.raises(VectorIndexError, match=r"image.faiss: query vectors of shape") as err:
            reader.search(IMG, np.ones((1, 8), np.float32), 3)
        assert "text tower" in err.value.hint
    assert not index_file.exists()  # readers never take the writer lock to save
    with Library.open(root, write=True):
        pass
    with Library.open(root) as reader:
        reader.search(IMG, np.ones((1, 16), np.float32), 1)
        assert reader.index_events[IMG].action is IndexAction.FRESH


def test_writer_open_recovers_every_modality(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    with Library.open(root, write=True) as lib:
        lib.set_modality(IMG, "m", "1", 16)
        lib.write_batch(batch(0, 10))
        lib.save()
        lib._catalog.write_batch(batch(10, 3))  # committed, never reached the index file
    with Library.open(root, write=True) as lib:
        event = lib.index_events[IMG]
        assert (event.action, event.added, event.removed) == (IndexAction.REPAIRED, 3, 0)
    assert_library_consistent(root, saved=True)


def test_library_uses_the_config(tmp_path: Path) -> None:
    config = Config(library=LibraryConfig(path=str(tmp_path / "configured")))
    os.environ.pop(LIBRARY_ENV, None)
    with Library.open(config=config, write=True) as lib:
        assert lib.root == tmp_path / "configured"


def test_sigterm_leaves_nothing_locked(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    child = hold_lock_in_child(root)
    child.send_signal(signal.SIGTERM)
    child.wait()
    with Library.open(root, write=True):
        pass


def test_storage_modules_stay_in_their_layer() -> None:
    """Layer 2: no CLI libraries; faiss, numpy and SQLAlchemy only load when used."""
    code = (
        "import sys\n"
        "import lbsearch.library, lbsearch.catalog, lbsearch.vectors\n"
        "print(sorted(m for m in ('typer', 'rich', 'textual', 'faiss', 'numpy', 'sqlalchemy',"
        " 'torch') if m in sys.modules))\n"
        "import lbsearch.catalog.store, lbsearch.vectors.store, lbsearch.library.indices\n"
        "print(sorted(m for m in ('typer', 'rich', 'textual', 'faiss', 'torch')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["[]", "[]"], done.stderr
