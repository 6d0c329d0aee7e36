"""Calibration, autocut and the cut-off (pure functions), and how `lbsearch query` shows them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lbsearch.cli import query as query_module
from lbsearch.cli.main import app
from lbsearch.config import load_config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.library import Library
from lbsearch.search.calibration import captions, install_banks
from lbsearch.search.relevance import Calibration, autocut, cut_off
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media
from lbsearch.vectors.bias import null_moments, segment_biases

runner = CliRunner()


def test_the_null_of_any_alpha_follows_from_the_moments() -> None:
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((300, 16)).astype(np.float32)
    sample = rng.standard_normal((400, 16)).astype(np.float32)
    biases = segment_biases(bank, sample, 10)
    moments = null_moments(bank, sample, biases)
    for alpha in (0.0, 0.5, 1.0, 2.0):
        corrected = bank @ sample.T - alpha * biases[None, :]
        null = Calibration.from_moments(moments, alpha)
        assert null is not None
        assert null.mean == pytest.approx(corrected.mean(), abs=1e-4)
        assert null.std == pytest.approx(corrected.std(), rel=1e-4)
        z = null.relevance(corrected)
        assert z.mean() == pytest.approx(0, abs=1e-6) and z.std() == pytest.approx(1, rel=1e-6)
    assert Calibration.from_moments([], 1.0) is None
    assert Calibration.from_moments([0.1, 0.1, 0.0, 0.0, 0.0], 1.0) is None, "no spread"


def test_autocut_stops_at_the_first_sharp_drop() -> None:
    assert autocut([9.0, 8.5, 8.0, 4.0, 3.9], gap=1.5) == 3
    assert autocut([9.0, 8.5, 8.0], gap=1.5) == 3
    assert autocut([9.0, 2.0, 1.0, -5.0], gap=1.5) == 1
    assert autocut([9.0, 2.0], gap=0) == 2, "gap 0: no autocut"
    assert autocut([], gap=1.5) == 0


def test_the_default_cut_off_keeps_the_strong_results_up_to_the_first_drop() -> None:
    cut = cut_off([6.0, 5.5, 5.0, 2.8, 2.6, 1.0], min_relevance=2.5, gap=1.5, explicit=False)
    assert cut.keep.tolist() == [True, True, True, False, False, False] and not cut.weak
    cut = cut_off([6.0, 5.5, 3.0, 1.0], min_relevance=2.5, gap=4.0, explicit=False)
    assert cut.keep.tolist() == [True, True, True, False]


def test_a_given_bar_replaces_the_default_cut_off_and_any_order_works() -> None:
    cut = cut_off([1.0, 6.0, 2.0, 9.0], min_relevance=1.5, gap=1.5, explicit=True)
    assert cut.keep.tolist() == [False, True, True, True] and not cut.weak
    cut = cut_off([1.0, 6.0, 2.0, 9.0], min_relevance=20, gap=1.5, explicit=True)
    assert not cut.keep.any() and not cut.weak, "a bar the user set shows nothing below it"


def test_when_nothing_clears_the_bar_the_best_three_show_marked_weak() -> None:
    cut = cut_off([0.5, 2.0, -1.0, 1.0, 0.0], min_relevance=2.5, gap=1.5, explicit=False)
    assert cut.weak and cut.keep.tolist() == [True, True, False, True, False]
    assert not cut_off([], min_relevance=2.5, gap=1.5, explicit=False).keep.any()


def test_the_bank_is_about_a_thousand_distinct_captions() -> None:
    bank = captions()
    assert 900 <= len(bank) <= 1100 and len(set(bank)) == len(bank)
    for word in ("sound", "thermal", "depth", "video", "photo"):
        assert any(word in caption for caption in bank), word


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("relevance")
    config = load_config()
    write_sample_media(base / "media")
    with Library.open(base / "library", config=config, write=True) as lib:
        run_index([base / "media"], lib, FakeEncoders(), config, IndexOptions(), lambda e: None)  # type: ignore[arg-type]
        install_banks(lib, FakeEncoders(), config.relevance)  # type: ignore[arg-type]
    return base / "library"


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: FakeEncoders())


def _rows(library: Path, *args: str, config: Path | None = None) -> tuple[int, list, str]:  # type: ignore[type-arg]
    options = ["--config", str(config)] if config else []
    result = runner.invoke(app, [*options, "query", *args, "--library", str(library)])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, rows, result.stderr


def test_results_rank_by_relevance_unless_ordered_by_score(library: Path, fake_cli: None) -> None:
    code, rows, _ = _rows(library, "a dog", "--all", "-n", "50")
    assert code == 0 and len(rows) == 7
    relevances = [r["relevance"] for r in rows]
    assert relevances == sorted(relevances, reverse=True)
    code, rows, _ = _rows(library, "a dog", "--all", "-n", "50", "--order", "score")
    assert code == 0 and len(rows) == 7
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)


def test_min_relevance_replaces_the_default_cut_off(library: Path, fake_cli: None) -> None:
    _, every, _ = _rows(library, "a dog", "--all", "-n", "50")
    bar = sorted(r["relevance"] for r in every)[2] - 1e-3  # all but the weakest two clear it
    code, rows, err = _rows(library, "a dog", "--min-relevance", str(bar))
    assert code == 0 and err == ""
    assert len(rows) == 5 and all(r["relevance"] >= bar for r in rows)
    assert not any(r["weak"] for r in rows)
    _, two, _ = _rows(library, "a dog", "--min-relevance", str(bar), "--limit", "2")
    assert len(two) == 2, "--limit still applies"


def test_nothing_strong_prints_the_best_three_marked_weak(
    library: Path, fake_cli: None, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[relevance]\nmin_relevance = 1000.0\n")
    code, rows, err = _rows(library, "a dog", config=config)
    assert code == 0 and len(rows) == 3 and all(r["weak"] for r in rows)
    assert "no result cleared the relevance bar" in err and "--all" in err
    _, every, _ = _rows(library, "a dog", "--all", "-n", "50")
    assert [r["path"] for r in rows] == [r["path"] for r in every[:3]], "the best three"


def test_status_json_says_whether_each_modality_is_calibrated(
    library: Path, tmp_path: Path
) -> None:
    def calibrations(root: Path) -> dict[str, bool]:
        result = runner.invoke(app, ["status", "--json", "--library", str(root)])
        assert result.exit_code == 0, result.output
        modalities = json.loads(result.stdout)["modalities"]
        return {m["modality"]: m["calibration"]["current"] for m in modalities}

    assert set(calibrations(library).values()) == {True}
    config = load_config()
    write_sample_media(tmp_path / "media")
    with Library.open(tmp_path / "library", config=config, write=True) as lib:
        run_index([tmp_path / "media"], lib, FakeEncoders(), config, IndexOptions(), lambda e: None)  # type: ignore[arg-type]
    assert set(calibrations(tmp_path / "library").values()) == {False}, "no bank yet"
