"""Fused windows and moments (lbsearch.search.moments) on planted per-window scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lbsearch.errors import UsageError
from lbsearch.search.moments import (
    RAW_SCALE,
    RELEVANCE_SCALE,
    Match,
    Windows,
    find_moments,
    fuse,
    soft_min,
    windows_from_streams,
)

NAN = math.nan


def video(picture: list[float], sound: list[float], window_s: float = 10.0) -> Windows:
    """Planted relevances (the raw scores are the relevances / 100, so both scales agree)."""
    n = len(picture)
    starts = np.arange(n) * window_s
    p, s = np.array(picture, dtype=float), np.array(sound, dtype=float)
    return Windows(starts, starts + window_s, p / 100, s / 100, p, s)


# ------------------------------------------------------------------------------------ fuse


def test_soft_min_lies_between_the_minimum_and_the_minimum_plus_t_ln2() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 3, 1000), rng.normal(0, 3, 1000)
    fused = soft_min(a, b, 0.5)
    assert (fused >= np.minimum(a, b) - 1e-12).all()
    assert (fused <= np.minimum(a, b) + 0.5 * math.log(2) + 1e-12).all()
    assert soft_min(np.array([2.0]), np.array([2.0]), 0.5)[0] == pytest.approx(2.0)
    # the generalised mean with exponent -1 of exp(x / t), back on the score scale
    x, y, t = 1.3, -0.4, 0.7
    harmonic = 2 / (1 / math.exp(x / t) + 1 / math.exp(y / t))
    assert soft_min(np.array([x]), np.array([y]), t)[0] == pytest.approx(t * math.log(harmonic))
    far = soft_min(np.array([900.0]), np.array([-900.0]), 0.01)[0]  # no overflow
    assert far == pytest.approx(-900.0 + 0.01 * math.log(2))


def test_both_ranks_the_window_where_both_match_above_those_where_one_does() -> None:
    picture = np.array([6.0, 6.0, 0.5, 4.0])
    sound = np.array([0.5, 6.0, 6.0, 4.0])
    both = fuse(picture, sound, Match.BOTH, RELEVANCE_SCALE.softness)
    assert int(np.argmax(both)) == 1
    assert both[3] > both[0] and both[3] > both[2]  # 4 and 4 beats 6 and 0.5
    mean = (picture + sound) / 2
    assert mean[0] == mean[3] - 0.75 and both[0] < both[3] - 3  # a mean would hardly tell


def test_any_picture_and_sound_modes() -> None:
    picture, sound = np.array([1.0, 5.0, NAN]), np.array([4.0, 2.0, 3.0])
    assert fuse(picture, sound, Match.ANY, 0.5).tolist() == [4.0, 5.0, 3.0]
    assert fuse(picture, sound, Match.PICTURE, 0.5)[:2].tolist() == [1.0, 5.0]
    assert math.isnan(fuse(picture, sound, Match.PICTURE, 0.5)[2])
    assert fuse(picture, sound, Match.SOUND, 0.5).tolist() == [4.0, 2.0, 3.0]
    assert math.isnan(fuse(picture, sound, Match.BOTH, 0.5)[2]), "no sound: no `both` value"


def test_match_names() -> None:
    assert Match.parse(" Both ") is Match.BOTH
    with pytest.raises(UsageError, match="average"):
        Match.parse("average")


# ---------------------------------------------------------------------------------- moments


def test_adjacent_windows_within_the_margin_merge_into_one_moment() -> None:
    windows = video([0.0, 5.0, 5.6, 4.7, 4.5, 3.0], [0.0] * 6)
    [moment] = find_moments(windows)
    assert (moment.start_s, moment.end_s) == (10.0, 40.0)  # 5.6 best; 5.0 and 4.7 within 1.0
    assert (moment.best_start_s, moment.best_end_s) == (20.0, 30.0)
    assert moment.picture_relevance == 5.6 and moment.picture_score == pytest.approx(0.056)
    assert moment.relevance == 5.6 and moment.sound_relevance == 0.0


def test_the_margin_is_a_setting() -> None:
    windows = video([0.0, 5.0, 5.6, 4.5, 0.0], [0.0] * 5)
    [narrow] = find_moments(windows, margin=0.5)
    assert (narrow.start_s, narrow.end_s) == (20.0, 30.0)
    [middle] = find_moments(windows, margin=0.7)
    assert (middle.start_s, middle.end_s) == (10.0, 30.0)
    [wide] = find_moments(windows, margin=10.0)
    assert (wide.start_s, wide.end_s) == (0.0, 50.0)


def test_n_best_moments_never_overlap_and_come_best_first() -> None:
    windows = video([1.0, 6.0, 6.2, 0.0, 3.0, 0.0, 4.0, 4.1], [0.0] * 8)
    moments = find_moments(windows, count=10)
    spans = [(m.start_s, m.end_s) for m in moments]
    assert spans[:4] == [(10.0, 30.0), (60.0, 80.0), (40.0, 50.0), (0.0, 10.0)]
    assert [m.relevance for m in moments] == sorted(
        (m.relevance or 0 for m in moments), reverse=True
    )
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            assert a[1] <= b[0] or b[1] <= a[0], (a, b)
    assert sum(m.end_s - m.start_s for m in moments) == 80.0  # every window, once
    assert len(find_moments(windows, count=1)) == 1


def test_windows_are_merged_only_when_adjacent_in_time() -> None:
    starts = np.array([0.0, 10.0, 30.0])  # a gap between 20 and 30 (a skipped window)
    values = np.array([5.0, 5.0, 5.0])
    windows = Windows(starts, starts + 10, values / 100, np.full(3, NAN), values, None)
    moments = find_moments(windows, count=3)
    assert [(m.start_s, m.end_s) for m in moments] == [(0.0, 20.0), (30.0, 40.0)]
    assert moments[0].sound_score is None and moments[0].sound_relevance is None


def test_match_both_finds_the_moment_where_picture_and_sound_agree() -> None:
    # a dog is seen in windows 1-2, a bark is heard in windows 2-3: both only in window 2
    windows = video([0.0, 6.0, 5.5, 0.2, 0.0], [0.0, 0.1, 5.8, 6.5, 0.0])
    assert [(m.start_s, m.end_s) for m in find_moments(windows, Match.BOTH)] == [(20.0, 30.0)]
    [picture] = find_moments(windows, Match.PICTURE)
    assert (picture.start_s, picture.end_s) == (10.0, 30.0)
    [sound] = find_moments(windows, Match.SOUND)
    assert (sound.start_s, sound.end_s) == (20.0, 40.0)
    [either] = find_moments(windows, Match.ANY)
    assert (either.start_s, either.end_s) == (10.0, 40.0)
    assert (either.best_start_s, either.picture_relevance, either.sound_relevance) == (
        30.0,
        0.2,
        6.5,
    )


def test_an_audio_files_overlapping_last_window_is_trimmed() -> None:
    # 10.4 s windows over a 25 s file: the last one is placed to end at the file's end
    starts = np.array([0.0, 10.4, 14.6])
    ends = starts + 10.4
    sound = np.array([0.0, 4.0, 6.0])
    windows = Windows(starts, ends, np.full(3, NAN), sound / 100, None, sound)
    moments = find_moments(windows, count=2, margin=0.5)
    assert [(m.start_s, m.end_s) for m in moments] == [(14.6, 25.0), (10.4, 14.6)]
    assert moments[0].picture_score is None and moments[0].sound_relevance == 6.0
    assert find_moments(windows, Match.BOTH) == [], "an audio file has no picture"


def test_order_score_chooses_by_raw_cosine() -> None:
    starts = np.array([0.0, 10.0])
    windows = Windows(
        starts, starts + 10, np.array([0.30, 0.25]), np.full(2, NAN), np.array([2.0, 4.0]), None
    )
    [by_relevance] = find_moments(windows)
    [by_score] = find_moments(windows, order="score", margin=0.01)
    assert by_relevance.best_start_s == 10.0 and by_score.best_start_s == 0.0
    assert by_score.relevance == 2.0  # the fused relevance is still reported
    assert RAW_SCALE.margin < RELEVANCE_SCALE.margin


def test_uncalibrated_windows_fall_back_to_raw_cosine() -> None:
    starts = np.array([0.0, 10.0])
    windows = Windows(starts, starts + 10, np.array([0.3, 0.2]), np.full(2, NAN))
    [moment] = find_moments(windows)
    assert moment.relevance is None and moment.picture_score == 0.3
    assert moment.to_json() == {
        "start_s": 0.0,
        "end_s": 10.0,
        "relevance": None,
        "picture_score": 0.3,
        "sound_score": None,
        "picture_relevance": None,
        "sound_relevance": None,
    }


def test_windows_from_streams_joins_a_video_and_its_sound_track() -> None:
    windows = windows_from_streams(
        [(0.0, 10.0, 0.3, 2.0), (10.0, 20.0, 0.1, 0.5)],
        [(10.0, 20.0, 0.25, 4.0), (0.0, 10.0, 0.05, 0.1)],
    )
    assert windows.start_s.tolist() == [0.0, 10.0]
    assert windows.picture_score.tolist() == [0.3, 0.1]
    assert windows.sound_score.tolist() == [0.05, 0.25]
    assert windows.sound_relevance is not None and windows.sound_relevance.tolist() == [0.1, 4.0]
    silent = windows_from_streams([(0.0, 10.0, 0.3, None)], [])
    assert silent.picture_relevance is None and silent.sound_relevance is None
    assert math.isnan(silent.sound_score[0])
