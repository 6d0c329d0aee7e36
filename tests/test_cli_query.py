"""`lbsearch query`: table, JSON Lines, --paths, messages and exit codes (fake encoders through
CliRunner), and end to end with tiny LanguageBind checkpoints in a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from lbsearch.cli import query as query_module
from lbsearch.cli.main import app
from lbsearch.config import load_config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.library import Library
from lbsearch.search import Query, SearchEngine, Term
from lbsearch.search.calibration import install_banks
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media

FIELDS = {
    "rank",
    "relevance",
    "weak",
    "score",
    "modality",
    "path",
    "start_s",
    "end_s",
    "span",
    "segment_id",
    "duration_s",
    "size",
    "mtime",
    "offline",
    "moments",
}
runner = CliRunner()


def near_duplicate(original: Path, target: Path) -> Path:
    with Image.open(original) as image:
        copy = image.convert("RGB")
    ImageDraw.Draw(copy).rectangle((10, 10, 30, 30), fill=(255, 0, 255))
    copy.save(target, quality=85)
    return target


def _index(media: Path, library: Path, encoders: object, config_path: Path | None = None) -> None:
    config = load_config(config_path)
    write_sample_media(media)
    with Library.open(library, config=config, write=True) as lib:
        run_index([media], lib, encoders, config, IndexOptions(), lambda event: None)  # type: ignore[arg-type]
        install_banks(lib, encoders, config.relevance)  # as `lbsearch index` does  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fake_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("fake")
    _index(base / "media", base / "library", FakeEncoders())
    return base / "media", base / "library"


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: FakeEncoders())


def _query(library: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["query", *args, "--library", str(library)])
    return result.exit_code, result.stdout, result.stderr


def test_json_lines_hold_every_field(fake_library: tuple[Path, Path], fake_cli: None) -> None:
    code, out, _ = _query(fake_library[1], "a dog", "--limit", "50", "--all")  # piped: JSON
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 7 and all(set(row) == FIELDS for row in rows)
    assert [r["rank"] for r in rows] == list(range(1, 8))
    assert [r["relevance"] for r in rows] == sorted((r["relevance"] for r in rows), reverse=True)
    assert not any(r["weak"] for r in rows)
    assert {r["modality"] for r in rows} >= {"image", "depth", "thermal", "audio"}
    hum = next(r for r in rows if r["path"].endswith("hum.flac"))
    assert hum["end_s"] > hum["start_s"] and hum["span"].count(":") == 2
    assert hum["duration_s"] == pytest.approx(14.0, abs=0.1) and hum["size"] > 0


def test_table_on_a_terminal(
    fake_library: tuple[Path, Path], fake_cli: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = _query(fake_library[1], "a dog", "-m", "audio", "--all", "--scores")
    assert code == 0
    assert "relevance" in out and "score" in out and "modality" in out and "hum.flac" in out
    assert "00:00-00:10" in out or "00:10-00:14" in out or "00:00-00:04" in out


def test_paths_only_and_like(
    fake_library: tuple[Path, Path], fake_cli: None, tmp_path: Path
) -> None:
    media = fake_library[0]
    copy = shutil.copy(media / "whistle.wav", tmp_path / "copy.wav")
    code, out, _ = _query(fake_library[1], "--like", str(copy), "--paths", "-n", "3", "--all")
    assert code == 0
    assert out.splitlines()[0] == str(media / "whistle.wav") and len(out.splitlines()) == 3
    code, out, _ = _query(fake_library[1], "--like", str(media / "whistle.wav"), "--paths")
    assert str(media / "whistle.wav") not in out.splitlines(), "the example is not a result"


def test_negatives_and_filters_change_results(
    fake_library: tuple[Path, Path], fake_cli: None
) -> None:
    media, library = fake_library
    sunset = str(media / "sunset_beach.jpg")
    _, plain, _ = _query(library, "beach", "-m", "image", "--paths", "--all")
    _, pushed, _ = _query(library, "beach", "-m", "image", "--not-like", sunset, "--paths", "--all")
    assert set(plain.splitlines()) == {sunset, str(media / "green_field.png")}
    assert pushed.splitlines() == [str(media / "green_field.png")], "the example itself is gone"
    _, weighted, _ = _query(library, "beach:2", "--not", "cat:0.5", "--json", "-n", "3", "--all")
    assert len(weighted.splitlines()) == 3
    _, only_wav, _ = _query(library, "beach", "--path", "*.wav", "--paths", "--all")
    assert only_wav.splitlines() == [str(media / "whistle.wav")]
    _, long_ones, _ = _query(library, "beach", "--min-duration", "10", "--paths", "--all")
    assert {Path(p).name for p in long_ones.splitlines()} == {"bouncing_ball.mp4", "hum.flac"}
    _, recent, _ = _query(library, "beach", "--after", "2000-01-01", "--paths", "--all")
    assert len(recent.splitlines()) == 7


def test_no_match_and_empty_library_say_so(
    fake_library: tuple[Path, Path], fake_cli: None, tmp_path: Path
) -> None:
    code, out, err = _query(fake_library[1], "beach", "--before", "2000-01-01")
    assert code == 1 and out == "" and "no match" in err
    code, _, err = _query(fake_library[1], "beach", "--min-score", "1.5")
    assert code == 1 and "no match" in err
    Library.open(tmp_path / "empty", write=True).close()
    code, _, err = _query(tmp_path / "empty", "beach")
    assert code == 1 and "nothing indexed" in err and "lbsearch index" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["beach", "--after", "yesterday"], 2, "not a date"),
        (["beach", "--json", "--paths"], 2, "do not go together"),
        (["beach", "-m", "smell"], 2, "unknown modality"),
        (["beach:0"], 2, "weight must be above 0"),
        ([], 2, "nothing to search for"),
        (["--not", "cat"], 2, "every term is negative"),
        (["--like", "/no/such/file.jpg"], 2, "no such file"),
    ],
)
def test_usage_errors(
    fake_library: tuple[Path, Path], fake_cli: None, args: list[str], code: int, message: str
) -> None:
    got, _, err = _query(fake_library[1], *args)
    assert got == code and message in err


def test_a_missing_library_says_what_to_do(tmp_path: Path) -> None:
    code, _, err = _query(tmp_path / "nowhere", "beach")
    assert code == 1 and "lbsearch index" in err


# ----------------------------------------------------------- tiny LanguageBind, end to end


@pytest.fixture(scope="module")
def tiny_library(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from lbsearch.embedder import open_embedder

    base = tmp_path_factory.mktemp("tiny")
    config = load_config(tiny_config)
    _index(base / "media", base / "library", open_embedder(config), tiny_config)
    return base / "media", base / "library"


def test_text_query_loads_one_text_tower_and_no_media_tower(
    tiny_config: Path, tiny_library: tuple[Path, Path]
) -> None:
    from lbsearch.embedder import LanguageBindEmbedder

    config = load_config(tiny_config)
    with Library.open(tiny_library[1], config=config) as lib:
        engine = SearchEngine(
            lib, config, query_module.make_encoders(lib, config, None, None, "torch")
        )
        hits = engine.search(Query((Term("a dog barking"),), limit=50))  # no cut-off
        encoders = engine.embedder
        assert isinstance(encoders, LanguageBindEmbedder)
        assert encoders.texts_encoded == 1, "five modalities share one tiny text tower"
        assert encoders._media == {}, "no vision or audio tower for a text query"
        assert len(encoders._text) == 1
        assert len({h.path for h in hits}) == 7
        assert {h.modality.value for h in hits} >= {"image", "depth", "thermal", "audio"}


def _lbsearch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbsearch", "--config", str(config), "query", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_cli_end_to_end_with_tiny_checkpoints(
    tiny_config: Path, tiny_library: tuple[Path, Path], tmp_path: Path
) -> None:
    media, library = tiny_library
    done = _lbsearch(
        tiny_config, "a dog barking", "--limit", "50", "--all", "--library", str(library)
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]  # piped: JSON Lines
    assert len(rows) == 7 and all(set(row) == FIELDS for row in rows)
    copy = near_duplicate(media / "sunset_beach.jpg", tmp_path / "sunset.jpg")
    done = _lbsearch(tiny_config, "--like", str(copy), "--paths", "--library", str(library))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(media / "sunset_beach.jpg")


COLD_QUERY = """
import os, runpy, sys
blas = []
class NumpyWatch:  # the BLAS thread count numpy starts its pool with
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not blas:
            blas.append(os.environ.get("OPENBLAS_NUM_THREADS"))
sys.meta_path.insert(0, NumpyWatch())
sys.argv = ["lbsearch", "--config", sys.argv[1], "query", "a dog barking", "--json",
            "--library", sys.argv[2], "--backend", "onnxruntime"]
try:
    runpy.run_module("lbsearch", run_name="__main__")
except SystemExit as done:
    code = done.code
print("LOADED", sorted(m for m in ("torch", "transformers", "sqlalchemy", "numpy.ma") if m in sys.modules), code,
      "BLAS", blas, file=sys.stderr)
"""


def test_a_cold_text_query_imports_no_torch_transformers_sqlalchemy_or_numpy_ma(
    tiny_config: Path, tiny_library: tuple[Path, Path]
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OPENBLAS_NUM_THREADS", None)
    args = [sys.executable, "-c", COLD_QUERY, str(tiny_config), str(tiny_library[1])]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert "LOADED" in first.stderr and first.stdout.strip(), first.stderr  # exports the tower
    cold = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert cold.stdout == first.stdout
    assert "LOADED [] 0 BLAS ['1']" in cold.stderr, cold.stderr  # numpy's BLAS: one thread
    # the tokenizer's checked tables, kept by the first run, read by the second
    assert list((Path(os.environ["LBSEARCH_CACHE"]) / "tokenizers").glob("*.tables"))


def test_text_encoded_early_serves_the_librarys_checkpoints(
    tiny_config: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    """The query's text starts encoding with the configured checkpoint before the library opens;
    the library's own checkpoints (another file, the same text tower) reuse those vectors."""
    from lbsearch.embedder import open_embedder
    from lbsearch.testing.checkpoints import write_tiny_checkpoint
    from lbsearch.types import Modality

    config = load_config(tiny_config)
    early = open_embedder(config, backend="torch")
    first = early.embed_texts(Modality.IMAGE, ["a dog barking"])
    other = write_tiny_checkpoint(tmp_path / "other_audio", "audio_ft")  # same text weights
    late = early.for_models({Modality.AUDIO: str(other)})
    again = late.embed_texts(Modality.AUDIO, ["a dog barking"])
    np.testing.assert_array_equal(again, first)
    assert early.texts_encoded == 1 and late.model_id(Modality.AUDIO) == str(other.resolve())


# ------------------------------------------------------------------ dates and example folders

NOON = (2022, 1, 1, 12, 0)


@pytest.fixture(scope="module")
def dated_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every sample file modified at noon (local time) on 2022-01-01."""
    from datetime import datetime

    base = tmp_path_factory.mktemp("dated")
    noon = datetime(*NOON).timestamp()
    for path in write_sample_media(base / "media"):
        os.utime(path, (noon, noon))
    config = load_config()
    with Library.open(base / "library", config=config, write=True) as lib:
        run_index([base / "media"], lib, FakeEncoders(), config, IndexOptions(), lambda e: None)
    return base / "library"


@pytest.mark.parametrize(
    ("args", "found"),
    [
        (["--before", "2022-01-01"], 7),  # the whole day counts, noon included
        (["--after", "2022-01-01"], 7),  # from the day's start
        (["--after", "2022-01-01", "--before", "2022-01-01"], 7),
        (["--before", "2021-12-31"], 0),
        (["--after", "2022-01-02"], 0),
        (["--before", "2022-01-01T11:59"], 0),  # a date-time is exact
        (["--before", "2022-01-01T12:00"], 7),
        (["--after", "2022-01-01T12:00:01"], 0),
    ],
)
def test_a_date_is_the_whole_day_and_a_date_time_is_exact(
    dated_library: Path, fake_cli: None, args: list[str], found: int
) -> None:
    code, out, _ = _query(dated_library, "beach", "--paths", "-n", "50", "--all", *args)
    assert (code, len(out.splitlines())) == ((0, found) if found else (1, 0))


@pytest.mark.parametrize(
    ("args", "found"),
    [
        (["--after", "9999-12-31"], 0),
        (["--before", "9999-12-31"], 7),
        (["--before", "0001-01-01"], 0),
        (["--after", "0001-01-01"], 7),
        (["--after", "0001-01-01T00:00+05:00", "--before", "9999-12-31T23:59:59-05:00"], 7),
    ],
)
def test_the_ends_of_time_are_bounds_like_any_other(
    dated_library: Path, fake_cli: None, args: list[str], found: int
) -> None:
    """They ended in a traceback (local time at year 1 / Unix nanoseconds past 2262)."""
    result = runner.invoke(
        app, ["query", "beach", "--paths", "--all", "--library", str(dated_library), *args]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert (result.exit_code, len(result.stdout.splitlines())) == ((0, found) if found else (1, 0))


def test_help_says_what_a_date_means() -> None:
    result = runner.invoke(app, ["query", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "whole day" in text and "exact" in text


def test_like_a_folder_says_to_give_a_file(fake_library: tuple[Path, Path], fake_cli: None) -> None:
    media, library = fake_library
    code, out, err = _query(library, "--like", str(media))
    assert code == 2 and out == ""
    assert "is a folder" in err and "--path" in err
    assert "indexed" not in err, err


def test_a_path_given_as_text_is_noted(fake_library: tuple[Path, Path], fake_cli: None) -> None:
    media, library = fake_library
    code, out, err = _query(library, str(media / "whistle.wav"), "--paths")
    assert code == 0 and out, "still searched, as the text it was given as"
    assert "searched as a text" in err and f"--like {media / 'whistle.wav'}" in err
    _, _, err = _query(library, "a whistle", "--paths", "--all")
    assert err == ""


FRONT_ENDS = """
import os, sys
import lbsearch.cli.browse, lbsearch.cli.eval, lbsearch.cli.query, lbsearch.cli.serve.command
print(sorted(m for m in ("numpy", "faiss", "torch", "onnxruntime") if m in sys.modules))
lbsearch.cli.query.quiet_idle_threads()
lbsearch.cli.query.one_shot_blas()
print(os.environ["OPENBLAS_NUM_THREADS"], os.environ["OMP_WAIT_POLICY"])
"""


def test_the_search_front_ends_set_their_threads_before_numpy_loads() -> None:
    """`query`, `browse`, `eval` and `serve` call quiet_idle_threads first (`query` also
    one_shot_blas): they work only if importing these modules loads none of the libraries
    whose thread pools they set."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
    }
    done = subprocess.run(
        [sys.executable, "-c", FRONT_ENDS], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "1 PASSIVE"]


ONE_SHOT = """
import gc, os, runpy, sys
class Teardown:  # freed only if Python tears the process down
    def __del__(self, write=os.write):
        write(2, b"TEARDOWN\\n")
sentinel = Teardown()
real_exit = os._exit
def ending(status):
    print("ENDED", status, "gc", gc.isenabled(), file=sys.stderr)
    real_exit(status)
os._exit = ending
sys.argv = ["lbsearch", "--config", sys.argv[1], "query", *sys.argv[2:]]
runpy.run_module("lbsearch", run_name="__main__")
"""


def test_a_query_process_ends_without_teardown_and_keeps_its_status(
    tiny_config: Path, tiny_library: tuple[Path, Path]
) -> None:
    """A one-shot query skips the garbage collector and Python's teardown (cli/one_shot.py):
    its output is complete and its exit status the command's."""
    library = str(tiny_library[1])

    def one_shot(*args: str) -> subprocess.CompletedProcess[str]:
        script = [sys.executable, "-c", ONE_SHOT, str(tiny_config), *args, "--library", library]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        return subprocess.run(script, capture_output=True, text=True, timeout=300, env=env)

    found = one_shot("a dog barking", "--all", "--json", "--limit", "50")
    assert found.returncode == 0, found.stderr
    assert len([json.loads(line) for line in found.stdout.splitlines()]) == 7
    assert "ENDED 0 gc False" in found.stderr and "TEARDOWN" not in found.stderr, found.stderr
    misused = one_shot("a dog", "--after", "someday")
    assert misused.returncode == 2 and "is not a date" in misused.stderr
    assert "ENDED 2 gc False" in misused.stderr and "TEARDOWN" not in misused.stderr


def test_only_a_one_shot_process_keeps_objects_until_it_ends() -> None:
    from lbsearch.cli import one_shot

    one_shot.keep_until_exit(object())  # here, in the test process: nothing is kept
    assert one_shot._process.kept == []
    assert [one_shot.exit_status(c) for c in (None, 0, 3, 256 + 2, -1, "message")] == [
        0,
        0,
        3,
        2,
        255,
        1,
    ]
