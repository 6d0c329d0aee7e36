"""Moments through the engine and `lbsearch query`, on generated videos whose picture and sound
are known per 10 s window (lbsearch.testing.windows) and a fake encoder that sees the colours
and hears the tones (lbsearch.testing.window_encoders)."""

from __future__ import annotations

import itertools
import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lbsearch.cli import query as query_module
from lbsearch.cli.main import app
from lbsearch.config import load_config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.library import Library
from lbsearch.search import Hit, QueryRequest, SearchEngine, parse_query
from lbsearch.search.calibration import install_banks
from lbsearch.search.moments import Moment
from lbsearch.testing.window_encoders import WindowEncoders
from lbsearch.testing.windows import TONES_HZ, window_video

# colour / tone index per 10 s window: 0 red / 300 Hz, 1 green / 600 Hz, 2 blue / 900 Hz
BOTH_IN_ONE = ([0, 0, 2, 1, 1], [0, 2, 2, 1, 1])  # red and 900 Hz together in 10-20 s only
APART = ([0, 2, 1], [0, 2, 1])  # red at 0-10 s, 900 Hz at 10-20 s: never together
runner = CliRunner()
HOP_S = 10.36  # an audio window (1036 fbank frames)


def tone_wav(path: Path, tones: list[int], rate: int = 16000) -> Path:
    """A WAV whose audio window i holds TONES_HZ[tones[i]]."""
    t = np.arange(round(len(tones) * HOP_S * rate)) / rate
    index = np.minimum((t // HOP_S).astype(int), len(tones) - 1)
    hz = np.asarray(TONES_HZ)[np.asarray(tones)[index]]
    samples = (0.5 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("moments")
    media = base / "media"
    media.mkdir()
    window_video(media / "together.mp4", 50, colours=BOTH_IN_ONE[0], tones=BOTH_IN_ONE[1])
    window_video(media / "apart.mp4", 30, colours=APART[0], tones=APART[1])
    tone_wav(media / "tones.wav", [0, 0, 2])
    config, encoders = load_config(None), WindowEncoders()
    with Library.open(base / "library", config=config, write=True) as lib:
        run_index([media], lib, encoders, config, IndexOptions(), lambda event: None)  # type: ignore[arg-type]
        install_banks(lib, encoders, config.relevance)  # type: ignore[arg-type]
    return base / "library"


def search(library: Path, text: str = "red 900hz", **fields: object) -> dict[str, Hit]:
    config = load_config(None)
    request = QueryRequest(texts=(text,), all=True, **fields)  # type: ignore[arg-type]
    with Library.open(library, config=config) as lib:
        hits = SearchEngine(lib, config, WindowEncoders()).search(parse_query(request))  # type: ignore[arg-type]
    return {Path(h.path).name: h for h in hits}


def span(moment: Moment) -> tuple[float, float]:
    return round(moment.start_s, 2), round(moment.end_s, 2)


def test_both_ranks_the_window_where_both_match_above_windows_where_one_matches(
    library: Path,
) -> None:
    hits = search(library, match="both", moments=3)
    assert next(iter(hits)) == "together.mp4"  # audio files have no picture: not a "both" result
    top = hits["together.mp4"]
    assert span(top.moments[0]) == (10.0, 20.0) and top.moments[0].matched() == "both"
    assert (top.start_s, top.end_s) == (10.0, 20.0)
    assert top.relevance == pytest.approx(top.moments[0].relevance)
    one_stream = list(top.moments[1:])  # red alone (0-10), 900 Hz alone (20-30)
    assert one_stream and all(m.relevance < top.moments[0].relevance - 2 for m in one_stream)
    apart = hits["apart.mp4"]  # red and 900 Hz, but never in one window
    assert apart.relevance is not None and apart.relevance < top.relevance - 2
    assert "tones.wav" not in hits


def test_any_takes_the_better_stream_and_merges_adjacent_windows(library: Path) -> None:
    hits = search(library, match="any")
    together = hits["together.mp4"]
    (moment,) = together.moments
    # red seen (0-10), both (10-20), 900 Hz heard (20-30): one moment over three windows
    assert span(moment) == (0.0, 30.0)
    assert moment.relevance == pytest.approx(
        max(moment.picture_relevance or -math.inf, moment.sound_relevance or -math.inf)
    )
    assert together.relevance == pytest.approx(moment.relevance, abs=1e-3)
    assert span(hits["apart.mp4"].moments[0]) == (0.0, 20.0)


def test_picture_and_sound_use_that_stream_alone(library: Path) -> None:
    picture = search(library, match="picture")
    (seen,) = picture["together.mp4"].moments
    assert span(seen) == (0.0, 20.0) and seen.matched() == "picture"
    assert seen.relevance == pytest.approx(seen.picture_relevance)
    assert seen.sound_score is not None and seen.sound_score < 0.2  # reported, not fused
    assert "tones.wav" not in picture  # no picture
    sound = search(library, match="sound")
    (heard,) = sound["together.mp4"].moments
    assert span(heard) == (10.0, 30.0)  # its best window may be 10-20, where red shows too
    assert heard.relevance == pytest.approx(heard.sound_relevance)


def test_audio_files_get_moments_over_their_windows(library: Path) -> None:
    hits = search(library, "300hz", match="sound", moments=2)
    first, second = hits["tones.wav"].moments
    assert span(first) == (0.0, round(2 * HOP_S, 2))  # two 300 Hz windows merged
    assert first.picture_score is None and first.picture_relevance is None  # an audio file
    assert first.sound_score is not None
    assert second.start_s >= first.end_s and second.relevance < first.relevance


@pytest.mark.parametrize("match", ["any", "both", "picture", "sound"])
def test_moments_never_overlap_and_come_best_first(library: Path, match: str) -> None:
    for hit in search(library, match=match, moments=5).values():
        moments = hit.moments
        assert moments, hit.path
        values = [m.relevance for m in moments]
        assert values == sorted(values, reverse=True)  # type: ignore[type-var]
        ordered = sorted(moments, key=lambda m: m.start_s)
        assert all(a.end_s <= b.start_s + 1e-6 for a, b in itertools.pairwise(ordered))


def test_order_score_fuses_raw_cosines(library: Path) -> None:
    hits = search(library, match="both", order="score")
    top = hits["together.mp4"]
    assert span(top.moments[0]) == (10.0, 20.0)
    assert top.score == pytest.approx(
        min(top.moments[0].picture_score or 0, top.moments[0].sound_score or 0), abs=0.01
    )


def test_like_a_video_searches_sound_windows_with_its_sound_track(library: Path) -> None:
    config = load_config(None)
    example = library.parent / "media" / "apart.mp4"  # heard: 300, 900 and 600 Hz
    request = QueryRequest(like=(str(example),), match="sound", all=True)
    with Library.open(library, config=config) as lib:
        hits = SearchEngine(lib, config, WindowEncoders()).search(parse_query(request))  # type: ignore[arg-type]
    found = {Path(h.path).name: h for h in hits}
    # its picture vector (red + blue + green) would score every sound window near 0
    assert found["together.mp4"].score > 0.5
    assert found["tones.wav"].score > 0.5


def test_query_json_and_cut(library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: WindowEncoders())
    args = ["query", "red 900hz", "--match", "both", "--moments", "2", "--library", str(library)]
    plain = runner.invoke(app, [*args, "--json"])
    assert plain.exit_code == 0, plain.output
    lines = [json.loads(line) for line in plain.stdout.splitlines()]
    assert lines[0]["path"].endswith("together.mp4")
    assert lines[0]["moments"][0] == {
        "start_s": 10.0,
        "end_s": 20.0,
        "relevance": pytest.approx(lines[0]["relevance"], abs=1e-3),
        "picture_score": pytest.approx(1.0, abs=0.01),
        "sound_score": pytest.approx(1.0, abs=0.01),
        "picture_relevance": pytest.approx(lines[0]["moments"][0]["picture_relevance"]),
        "sound_relevance": pytest.approx(lines[0]["moments"][0]["sound_relevance"]),
    }
    clips = tmp_path / "clips" / "new"
    cut = runner.invoke(app, [*args, "--json", "--cut", str(clips)])
    assert cut.exit_code == 0, cut.output
    assert cut.stdout == plain.stdout  # --cut leaves stdout alone
    written = sorted(p.name for p in clips.iterdir())
    assert "together_0010.0-0020.0.mp4" in written
    assert len(written) == sum(len(line["moments"]) for line in lines)
    assert str(clips / "together_0010.0-0020.0.mp4") in cut.stderr


def test_unknown_match_mode_is_a_usage_error(library: Path) -> None:
    result = runner.invoke(app, ["query", "red", "--match", "all", "--library", str(library)])
    assert result.exit_code == 2
    assert "unknown match mode" in result.stderr


def test_table_shows_each_moment_span_and_stream(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: WindowEncoders())
    monkeypatch.setattr(query_module, "terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    args = ["query", "red 900hz", "--match", "both", "--moments", "3", "--all"]
    result = runner.invoke(app, [*args, "--library", str(library)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert any(row[-2:] == ["00:10-00:20", "P+S"] for row in rows), result.stdout
    assert any(row[-2:] == ["00:00-00:10", "P"] for row in rows)  # red seen alone
    assert any(row[-1] == "S" for row in rows)  # 900 Hz heard alone
    assert "match" in rows[0]


def test_a_match_mode_that_searches_none_of_the_modalities_asked_is_a_usage_error(
    library: Path,
) -> None:
    for mode, modality in (("both", "image"), ("sound", "video"), ("picture", "audio")):
        args = ["query", "red", "--match", mode, "-m", modality, "--library", str(library)]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (mode, result.output)
        assert f"--match {mode} searches none of the modalities asked ({modality})" in result.stderr
