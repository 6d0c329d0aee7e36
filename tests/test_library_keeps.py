"""The library never loses work: offline folders, encodings as provenance, change detection that
catches replacements, explicit forgetting, read-only libraries, crashed runs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from lbsearch.config import Config
from lbsearch.embedder import Encoding
from lbsearch.errors import UsageError
from lbsearch.indexers import plan as plan_module
from lbsearch.indexers import walk as walk_module
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.indexers.progress import Event, Finished
from lbsearch.indexers.walk import WalkOptions
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.library import assert_library_consistent
from lbsearch.types import Modality

CONFIG = Config()
PHOTOS = 110


def _pictures(folder: Path, count: int, start: int = 0) -> None:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        where = folder / "sub" if i % 2 else folder
        colour = (i * 7 % 256, i * 13 % 256, i * 29 % 256)
        Image.new("RGB", (24, 24), colour).save(where / f"p{i:03d}.png")


def _index(
    library: Path, roots: list[Path], encoders: FakeEncoders | None = None, **options: object
) -> tuple[Finished, list[Event]]:
    events: list[Event] = []
    with Library.open(library, config=CONFIG, write=True) as lib:
        done = run_index(
            roots, lib, encoders or FakeEncoders(), CONFIG, IndexOptions(**options), events.append
        )  # type: ignore[arg-type]
    return done, events


def _snapshot(library: Path) -> dict[str, list[float]]:
    """Every file's first vector, by path: what the library holds and would search."""
    with Library.open(library, config=CONFIG) as lib:
        out = {}
        for record in lib.catalog.iter_files():
            vectors = lib.stored_vectors(record)
            out[record.path] = [] if vectors is None else vectors[0].round(6).tolist()
        return out


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, Path]:
    media = tmp_path / "drive"
    _pictures(media, PHOTOS)
    done, _ = _index(tmp_path / "lib", [media])
    assert done.counts.added == PHOTOS
    return media, tmp_path / "lib"


def test_an_unmounted_drive_keeps_every_file_and_comes_back_without_embedding(
    indexed: tuple[Path, Path],
) -> None:
    media, library = indexed
    before = _snapshot(library)
    hidden = media.with_name("drive-away")
    media.rename(hidden)
    media.mkdir()  # the empty mount point an unmounted drive leaves
    done, events = _index(library, [media])
    assert done.counts.removed == 0 and done.counts.offline == PHOTOS
    assert [f.folder for f in done.offline] == [str(media)]
    assert any("offline" in getattr(e, "detail", "") for e in events)
    assert _snapshot(library) == before
    assert sum(assert_library_consistent(library, CONFIG).values()) == PHOTOS
    shown = _cli("status", "--json", "--library", str(library))
    assert shown.returncode == 0, shown.stderr
    offline = json.loads(shown.stdout)["offline"]
    assert [(f["folder"], f["files"]) for f in offline] == [(str(media), PHOTOS)]
    media.rmdir()
    hidden.rename(media)  # mounted again
    encoders = FakeEncoders()
    done, _ = _index(library, [media], encoders)
    assert done.counts.unchanged == PHOTOS and not encoders.calls and not done.offline
    with Library.open(library, config=CONFIG) as lib:
        assert lib.stats().catalog.offline == ()


def test_a_root_that_is_gone_is_offline_not_swept(indexed: tuple[Path, Path]) -> None:
    media, library = indexed
    before = _snapshot(library)
    shutil.rmtree(media)
    done, _ = _index(library, [media])
    assert done.counts.removed == 0 and done.counts.offline == PHOTOS
    assert _snapshot(library) == before


def test_an_unreadable_folder_keeps_its_files_and_only_listed_ones_sweep(
    indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    media, library = indexed
    (media / "p000.png").unlink()  # gone from a folder that is listed: swept
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(str(path)) == media / "sub":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(walk_module.os, "scandir", scandir)
    done, _ = _index(library, [media])
    assert done.counts.removed == 1
    assert done.counts.offline == PHOTOS // 2
    assert "Permission denied" in done.offline[0].reason
    assert sum(assert_library_consistent(library, CONFIG).values()) == PHOTOS - 1


def test_a_new_root_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or folder"):
        _index(tmp_path / "lib", [tmp_path / "typo"])


def test_an_encoding_change_on_an_unrelated_folder_keeps_every_vector(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    media, library = indexed
    before = _snapshot(library)
    empty = tmp_path / "elsewhere"
    empty.mkdir()

    class Bfloat16(FakeEncoders):  # what another machine's "auto" resolves to
        def encoding(self, modality: Modality) -> Encoding:
            return Encoding("fake", "bfloat16")

    encoders = Bfloat16()
    done, _ = _index(library, [empty], encoders)
    assert done.counts.removed == 0 and _snapshot(library) == before
    done, _ = _index(library, [media], encoders)
    assert done.counts.unchanged == PHOTOS and not encoders.calls
    with Library.open(library, config=CONFIG) as lib:
        run = lib.stats().catalog.last_run
        assert run is not None and run.encodings["image"] == "fake/bfloat16"


def test_a_same_size_same_mtime_replacement_is_embedded_again(
    indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    media, library = indexed
    target = media / "p002.png"
    before = _snapshot(library)[str(target)]
    st = target.stat()
    other = tmp_path / "other.png"
    shutil.copy(media / "p004.png", other)  # same size: same tiny PNG shape, other colour
    assert other.stat().st_size == st.st_size
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))  # `touch -r`
    other.replace(target)  # an atomic replace, as editors and rsync do
    done, _ = _index(library, [media])
    assert done.counts.updated == 1
    assert _snapshot(library)[str(target)] != before


def test_a_chmod_rechecks_but_the_same_content_keeps_its_vectors(
    indexed: tuple[Path, Path],
) -> None:
    media, library = indexed
    before = _snapshot(library)
    (media / "p002.png").chmod(0o600)  # ctime changes, content does not
    encoders = FakeEncoders()
    done, _ = _index(library, [media], encoders)
    assert done.counts.updated == 1 and done.counts.reused == 1 and not encoders.calls
    assert _snapshot(library) == before


def test_a_file_unreadable_once_is_retried_when_its_permissions_come_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = tmp_path / "media"
    _pictures(media, 2)
    locked = media / "p000.png"
    real_hash = plan_module.hash_file

    def hash_file(path: Path) -> str:
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_hash(path)

    monkeypatch.setattr(plan_module, "hash_file", hash_file)
    done, _ = _index(tmp_path / "lib", [media])
    assert done.counts.failed == 1
    monkeypatch.setattr(plan_module, "hash_file", real_hash)
    Path(locked).chmod(0o644)  # the permissions come back: ctime changes
    done, _ = _index(tmp_path / "lib", [media])  # no --retry-failed
    assert done.counts.updated == 1 and done.counts.failed == 0


def test_an_indexed_file_that_becomes_unreadable_keeps_its_vectors(
    indexed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    media, library = indexed
    before = _snapshot(library)
    locked = media / "p002.png"
    Path(locked).chmod(0o000)  # ctime changes: checked again
    st = locked.stat()
    os.utime(locked, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # and its mtime, say a copy
    real_hash = plan_module.hash_file

    def hash_file(path: Path) -> str:
        if Path(path) == locked:  # as a non-root user sees it
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_hash(path)

    monkeypatch.setattr(plan_module, "hash_file", hash_file)
    done, _ = _index(library, [media])
    assert done.counts.failed == 0 and _snapshot(library) == before


def test_forget_is_the_way_files_leave(indexed: tuple[Path, Path]) -> None:
    media, library = indexed
    shutil.rmtree(media)
    _index(library, [media])
    with Library.open(library, config=CONFIG, write=True) as lib:
        assert lib.forget([str(media / "sub")]) == PHOTOS // 2
        assert [f.files for f in lib.offline_folders()] == [PHOTOS - PHOTOS // 2]
        assert lib.forget([str(media)]) == PHOTOS - PHOTOS // 2
        assert lib.offline_folders() == ()
    assert assert_library_consistent(library, CONFIG) == dict.fromkeys(Modality, 0)


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "lbsearch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def test_forget_on_the_command_line_asks_unless_told(indexed: tuple[Path, Path]) -> None:
    media, library = indexed
    refused = _cli(
        "forget", str(media / "sub"), "--library", str(library), stdin=subprocess.DEVNULL
    )
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = _cli("forget", str(media / "sub"), "--library", str(library), "--yes")
    assert done.returncode == 0, done.stderr
    assert f"forgot {PHOTOS // 2} files" in done.stderr
    nothing = _cli("forget", str(media / "nowhere"), "--library", str(library), "--yes")
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr


def test_status_lists_offline_folders_and_a_killed_run_as_interrupted(
    indexed: tuple[Path, Path],
) -> None:
    media, library = indexed
    shutil.rmtree(media / "sub")
    (media / "sub").mkdir()
    _index(library, [media])
    with Library.open(library, config=CONFIG, write=True) as lib:
        lib.start_run(["/somewhere"], {})  # a run whose process died: never finished
    shown = _cli("status", "--json", "--library", str(library))
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert [(o["folder"], o["files"]) for o in status["offline"]] == [
        (str(media / "sub"), PHOTOS // 2)
    ]
    assert status["last_run"]["status"] == "interrupted"
    text = _cli("status", "--library", str(library))
    assert "offline" in text.stdout and str(media / "sub") in text.stdout


def test_query_marks_offline_files(indexed: tuple[Path, Path]) -> None:
    from lbsearch.search import SearchEngine
    from lbsearch.search.query import Query, Term

    media, library = indexed
    shutil.rmtree(media / "sub")
    (media / "sub").mkdir()  # a mount point inside the root, its drive away
    _index(library, [media])
    with Library.open(library, config=CONFIG) as lib:
        engine = SearchEngine(lib, CONFIG, FakeEncoders())
        hits = engine.search(Query((Term(text="a picture"),), limit=PHOTOS))
    assert len(hits) == PHOTOS
    assert {h.path for h in hits if h.offline} == {
        str(media / "sub" / f"p{i:03d}.png") for i in range(1, PHOTOS, 2)
    }


_READ_ONLY = """
set -e
mount --bind "$1" "$2"
mount -o remount,bind,ro "$2"
shift 2
for args in "status --json" "query sunset --json" "index $MEDIA"; do
    echo "== $args"
    python -m lbsearch --config "$CONFIG" $args --library "$RO" && echo "rc=0" || echo "rc=$?"
done
"""


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_a_read_only_library_can_be_shown_and_searched_but_not_indexed(
    tiny_config: Path, tmp_path: Path
) -> None:
    """On a read-only mount (a bind mount in a private mount namespace)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    media = tmp_path / "media"
    _pictures(media, 4)
    library = tmp_path / "lib"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    built = _cli(
        "--config", str(tiny_config), "index", str(media), "--library", str(library), env=env
    )
    assert built.returncode == 0, built.stderr
    mounted = tmp_path / "ro"
    mounted.mkdir()
    bin_dir = str(Path(sys.executable).parent)
    env |= {"CONFIG": str(tiny_config), "MEDIA": str(media), "RO": str(mounted)}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", _READ_ONLY, "sh", str(library), str(mounted)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if "mount" in done.stderr and "== status" not in done.stdout:
        pytest.skip(f"no private mount namespace here: {done.stderr[-200:]}")
    status, query, index = done.stdout.split("== ")[1:]
    assert status.strip().endswith("rc=0"), done.stderr
    assert json.loads(status.split("\n", 1)[1].rsplit("rc=", 1)[0])["files"] == 4
    assert query.strip().endswith("rc=0") and ".png" in query, done.stderr
    assert index.strip().endswith("rc=1") and "read-only" in done.stderr
    assert "Traceback" not in done.stderr


_REEMBED = """
import os, signal, sys
from pathlib import Path
from lbsearch.config import Config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.indexers.progress import FileDone
from lbsearch.library import Library, indices
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.types import Modality

library, media, kill_at = sys.argv[1], sys.argv[2], sys.argv[3]
done = 0

def progress(event):
    global done
    if isinstance(event, FileDone):
        done += 1
        if kill_at.isdigit() and done > int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

if kill_at == "switch":  # the new vectors are committed, the index not rebuilt yet
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    indices.LibraryIndices.rebuild = die

encoders = FakeEncoders(dim=24, models={Modality.IMAGE: "fake/image-v2"})  # another space
import dataclasses
config = Config()
config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, batch_size=2))
with Library.open(library, config=config, write=True) as lib:
    run_index([Path(media)], lib, encoders, config, IndexOptions(reembed=True), progress)
"""


def _reembed(library: Path, media: Path, kill_at: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _REEMBED, str(library), str(media), kill_at],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def _image_model(library: Path) -> str:
    with Library.open(library, config=CONFIG) as lib:
        return lib.modality_states()[Modality.IMAGE].model_id


@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_a_killed_re_embed_keeps_the_old_vectors_serving_and_resumes(tmp_path: Path) -> None:
    media = tmp_path / "media"
    _pictures(media, 12)
    _index(tmp_path / "lib", [media])
    before = _snapshot(tmp_path / "lib")
    shutil.copytree(tmp_path / "lib", tmp_path / "straight")
    assert _reembed(tmp_path / "straight", media, "never") == 0
    wanted = _snapshot(tmp_path / "straight")
    assert _image_model(tmp_path / "straight") == "fake/image-v2" and wanted != before
    for kill_at in ("0", "3", "7", "switch"):
        assert _reembed(tmp_path / "lib", media, kill_at) == -9
        if kill_at != "switch":  # until the switch, every file is found by its old vector
            assert _snapshot(tmp_path / "lib") == before
            assert _image_model(tmp_path / "lib") == "fake/image-v1"
        assert sum(assert_library_consistent(tmp_path / "lib", CONFIG).values()) == 12
    assert _image_model(tmp_path / "lib") == "fake/image-v2"  # the switch had committed
    assert _reembed(tmp_path / "lib", media, "never") == 0
    assert _snapshot(tmp_path / "lib") == wanted
    assert assert_library_consistent(tmp_path / "lib", CONFIG, saved=True)


def test_a_model_change_without_reembed_exits_2_and_changes_nothing(
    indexed: tuple[Path, Path],
) -> None:
    media, library = indexed
    before = _snapshot(library)
    from lbsearch.catalog import ModelChangedError

    with pytest.raises(ModelChangedError) as refused:
        _index(library, [media], FakeEncoders(models={Modality.IMAGE: "fake/image-v2"}))
    assert refused.value.exit_code == 2 and "--reembed" in str(refused.value)
    assert _snapshot(library) == before


def test_index_of_a_missing_root_creates_no_library(tmp_path: Path) -> None:
    done = _cli("index", str(tmp_path / "typo"), "--library", str(tmp_path / "lib"))
    assert done.returncode == 2, done.stderr
    assert "no such file or folder" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "lib").exists()


def test_files_left_out_by_a_changed_setting_are_kept(tmp_path: Path) -> None:
    """A run without --include-hidden, or with a new --exclude or ignore rule, is not a request
    to delete what an earlier run embedded; a file gone from disk still leaves."""
    media = tmp_path / "media"
    _pictures(media, 6)
    (media / ".hidden").mkdir()
    shutil.copy(media / "p000.png", media / ".hidden" / "secret.png")
    _index(tmp_path / "lib", [media], walk=WalkOptions(include_hidden=True))
    (media / ".lbsearchignore").write_text("p002.png\n")
    (media / "p004.png").unlink()
    done, _ = _index(tmp_path / "lib", [media], walk=WalkOptions(excludes=("sub/",)))
    assert done.counts.removed == 1
    kept = set(_snapshot(tmp_path / "lib"))
    assert str(media / ".hidden" / "secret.png") in kept
    assert {str(media / "p002.png"), str(media / "sub" / "p001.png")} <= kept
    assert str(media / "p004.png") not in kept
