"""How decode workers start: never from a decoy in the current directory; a pool whose workers
cannot start is an LbsearchError that says what to do, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import media_factory as mf
import pytest

from lbsearch.config import Config
from lbsearch.errors import LbsearchError
from lbsearch.media import DecodePool, PoolBrokenError
from lbsearch.media import pool as pool_module
from lbsearch.testing.checkpoints import write_tiny_config
from lbsearch.types import MediaSpec, Modality

CFG = Config()
pytestmark = pytest.mark.timeout(240)
# What a folder named `lbsearch` (or `torch`) in the current directory can hold: the media of a
# library named ./lbsearch (a namespace package to Python), a package that fails on import, or
# one that imports but is not lbsearch (the parent folder of a clone holds a repository).
DECOYS = {
    "media": None,
    "raises": 'raise RuntimeError("the decoy in the current directory was imported")\n',
    "imports": 'print("the decoy in the current directory was imported")\n',
}

# Run as a script file, as the `lbsearch` console script runs: the current directory is not on
# this process's sys.path (a `python -c` or `python -m` parent would import the decoy itself).
POOL_SCRIPT = """
import sys
from pathlib import Path
from lbsearch.config import Config
from lbsearch.errors import LbsearchError
from lbsearch.media import DecodePool
from lbsearch.types import MediaSpec, Modality

if __name__ == "__main__":
    try:
        with DecodePool(Config(), workers=1) as pool:
            segments = pool.decode(Path(sys.argv[1]), MediaSpec(Modality.IMAGE))
    except LbsearchError as error:
        print(f"error: {error}")
        sys.exit(3)
    print(f"decoded {len(segments)}")
"""


def decoy_folder(parent: Path, kind: str) -> Path:
    """A folder holding decoys named `lbsearch`, `cli`, `indexers` and `torch`."""
    for name in ("lbsearch", "cli", "indexers", "torch"):
        (parent / name).mkdir(parents=True)
        code = DECOYS[kind]
        if code is None:
            mf.image(parent / name / "photo.png", 8, 8)
        else:
            (parent / name / "__init__.py").write_text(code, encoding="utf-8")
    return parent


@pytest.mark.parametrize("kind", sorted(DECOYS))
def test_workers_ignore_a_decoy_lbsearch_in_the_current_directory(
    kind: str, tmp_path: Path
) -> None:
    picture = mf.image(tmp_path / "a.png", 32, 24)
    script = tmp_path / "scripts" / "decode_one.py"
    script.parent.mkdir()
    script.write_text(POOL_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(picture)],
        cwd=decoy_folder(tmp_path / "work", kind),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "decoded 1"
    assert "decoy" not in done.stderr


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "lbsearch").exists(), reason="no lbsearch console script"
)
@pytest.mark.slow  # the default run stays under 10 minutes; CI runs it
def test_index_and_embed_run_from_a_folder_with_a_decoy_lbsearch(tmp_path: Path) -> None:
    """End to end through the installed console script (editable here, the wheel in `make
    smoke`), with tiny checkpoints."""
    media = tmp_path / "media"
    media.mkdir()
    mf.image(media / "a.png", 40, 30)
    mf.audio(media / "s.wav", 2.0)
    config = write_tiny_config(
        tmp_path / "config.toml", tmp_path / "models", runtime={"device": "cpu"}
    )
    lbsearch = str(Path(sys.executable).parent / "lbsearch")
    env = {**os.environ, "LBSEARCH_CONFIG": str(config), "LBSEARCH_HOME": str(tmp_path / "lib")}
    work = decoy_folder(tmp_path / "work", "media")  # a library named ./lbsearch
    for command in (["index", str(media)], ["embed", str(media / "s.wav"), "--json"]):
        done = subprocess.run(
            [lbsearch, *command], cwd=work, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "decoy" not in done.stderr


# Replacement worker entry points: top-level, so that worker processes can import them by name.
def dying_worker(conn: Connection, *args: object) -> None:
    os._exit(7)  # like an interpreter that cannot even unpickle its task


def fatal_worker(conn: Connection, *args: object) -> None:
    conn.send(("fatal", "ModuleNotFoundError: No module named 'av'"))


@pytest.mark.parametrize(
    ("worker", "said"),
    [(dying_worker, "exit code 7"), (fatal_worker, "No module named 'av'")],
)
def test_a_pool_whose_workers_cannot_start_is_an_error_with_a_hint(
    worker: object, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = mf.image(tmp_path / "a.png", 16, 16)
    monkeypatch.setattr(pool_module, "worker_main", worker)
    with DecodePool(CFG, workers=1) as pool, pytest.raises(PoolBrokenError) as info:
        pool.decode(picture, MediaSpec(Modality.IMAGE))
    assert isinstance(info.value, LbsearchError)  # the CLI prints it: error + hint, exit 1
    assert "decode worker processes cannot start" in info.value.message
    assert said in info.value.message
    assert sys.executable in info.value.hint


def test_the_hint_names_a_decoy_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picture = mf.image(tmp_path / "a.png", 16, 16)
    work = decoy_folder(tmp_path / "work", "media")
    monkeypatch.chdir(work)
    monkeypatch.setattr(pool_module, "worker_main", dying_worker)
    with DecodePool(CFG, workers=1) as pool, pytest.raises(PoolBrokenError) as info:
        pool.decode(picture, MediaSpec(Modality.IMAGE))
    assert str(work / "lbsearch") in info.value.hint
    assert "run lbsearch from another directory" in info.value.hint
