"""Fused windows and moments: pure functions over one file's per-window scores.

A video is indexed as picture windows plus a sound-track window with the same start and end;
an audio file as sound windows only. For one file and one query:

1. `fuse` turns the picture score and the sound score of each window into one value, by mode:
   - `any`: the better stream (max), today's file ranking made explicit;
   - `both`: a soft minimum, so a window ranks high only when both streams match:
     ``soft_min(a, b) = t * log(M_-1(exp(a / t), exp(b / t)))``, the generalised (power) mean
     with exponent -1 (the harmonic mean) of exp(score / t), taken back to the score's scale.
     It lies between min(a, b) and min(a, b) + t * ln 2, equals a when a == b, and tends to
     the minimum as the softness t goes to 0. Scores may be negative (relevance is a z-score),
     which a power mean of the scores themselves could not take. A window without one of the
     streams (a video without sound, an audio file) has no `both` value;
   - `picture` / `sound`: that stream alone.
   Plain averaging is deliberately not a mode: it lets the unrelated stream pull a good match
   down (and lifts a window where neither matches well).
2. `find_moments` merges adjacent windows into moments: the best remaining window seeds a
   moment, which grows over neighbouring windows (touching or overlapping in time) whose fused
   value stays within `margin` of the seed's; the seed of the first moment is the file's best
   window. Repeating on the windows left gives the N best non-overlapping moments, best first.
   Overlapping windows (an audio file's last window overlaps its neighbour) are trimmed so that
   moments never overlap.

Which numbers are fused (`Scale`): calibrated relevances when every window has them, raw
cosines otherwise or under `order="score"`; `fused_values` is the one place that chooses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .match import (
    MOMENT_FIELDS,
    RAW_SCALE,
    RELEVANCE_SCALE,
    TIMED,
    Match,
    Moment,
    Scale,
    stream_modalities,
)

__all__ = [
    "MOMENT_FIELDS",
    "RAW_SCALE",
    "RELEVANCE_SCALE",
    "TIMED",
    "Match",
    "Moment",
    "Scale",
    "Windows",
    "find_moments",
    "fuse",
    "fused_values",
    "soft_min",
    "stream_modalities",
    "windows_from_streams",
]

_TOUCH_S = 1e-3  # windows whose gap is below a millisecond are adjacent


@dataclass(frozen=True)
class Windows:
    """One file's windows (same length arrays, any order). NaN marks a stream a window lacks;
    a relevance array is None where that stream has no calibration."""

    start_s: np.ndarray
    end_s: np.ndarray
    picture_score: np.ndarray
    sound_score: np.ndarray
    picture_relevance: np.ndarray | None = None
    sound_relevance: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.start_s)


def soft_min(a: np.ndarray, b: np.ndarray, softness: float) -> np.ndarray:
    """t * log(M_-1(exp(a/t), exp(b/t))) elementwise, computed stably; NaN where either is NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if softness <= 0:
        return np.minimum(a, b)
    low = np.minimum(a, b)
    # t * log(2 / (exp(-a/t) + exp(-b/t))) with the smaller value factored out
    spread = np.abs(a - b) / softness
    return low + softness * (math.log(2.0) - np.log1p(np.exp(-spread)))


def fuse(picture: np.ndarray, sound: np.ndarray, mode: Match, softness: float) -> np.ndarray:
    """One value per window from its picture and sound values (NaN: the window has no value)."""
    picture = np.asarray(picture, dtype=np.float64)
    sound = np.asarray(sound, dtype=np.float64)
    if mode is Match.PICTURE:
        return picture.copy()
    if mode is Match.SOUND:
        return sound.copy()
    if mode is Match.BOTH:
        return soft_min(picture, sound, softness)
    with np.errstate(invalid="ignore"):
        return np.fmax(picture, sound)  # fmax: the stream that is there when one is NaN


def fused_values(
    windows: Windows, mode: Match, order: str = "relevance"
) -> tuple[np.ndarray, Scale, np.ndarray | None]:
    """(the values moments are chosen and ordered by, their scale, the fused relevance or None).

    Relevance when `order` is "relevance" and each stream present has a calibration, else raw
    cosine; the fused relevance is reported either way where it exists."""
    picture_rel, sound_rel = windows.picture_relevance, windows.sound_relevance
    has_picture = bool(np.isfinite(windows.picture_score).any())
    has_sound = bool(np.isfinite(windows.sound_score).any())
    calibrated = (picture_rel is not None or not has_picture) and (
        sound_rel is not None or not has_sound
    )
    relevance = None
    if calibrated:
        nan = np.full(len(windows), np.nan)
        relevance = fuse(
            nan if picture_rel is None else picture_rel,
            nan if sound_rel is None else sound_rel,
            mode,
            RELEVANCE_SCALE.softness,
        )
    if order == "relevance" and relevance is not None:
        return relevance, RELEVANCE_SCALE, relevance
    raw = fuse(windows.picture_score, windows.sound_score, mode, RAW_SCALE.softness)
    return raw, RAW_SCALE, relevance


def find_moments(
    windows: Windows,
    mode: Match = Match.ANY,
    count: int = 1,
    *,
    order: str = "relevance",
    margin: float | None = None,
) -> list[Moment]:
    """The `count` best non-overlapping moments of one file, best first (see the module doc).
    `margin` replaces the scale's default (in the units of the values chosen by `order`)."""
    if len(windows) == 0 or count <= 0:
        return []
    values, scale, relevance = fused_values(windows, mode, order)
    margin = scale.margin if margin is None else margin
    order_idx = np.argsort(windows.start_s, kind="stable")
    starts, ends = windows.start_s[order_idx], windows.end_s[order_idx]
    ranked_values = values[order_idx]
    free = np.isfinite(ranked_values)
    spans: list[tuple[int, int, int]] = []  # (first, last, best) in time order
    while len(spans) < count and free.any():
        best = int(np.flatnonzero(free)[np.argmax(ranked_values[free])])
        first, last = _grow(best, ranked_values, starts, ends, free, ranked_values[best] - margin)
        free[first : last + 1] = False
        spans.append((first, last, best))
    moments = [_moment(windows, order_idx, relevance, s, starts, ends) for s in spans]
    return _trimmed(moments)


def _grow(
    seed: int,
    values: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    free: np.ndarray,
    floor: float,
) -> tuple[int, int]:
    """The run of free, adjacent windows around `seed` whose values stay at or above `floor`."""

    def joins(i: int, neighbour: int) -> bool:
        adjacent = starts[max(i, neighbour)] <= ends[min(i, neighbour)] + _TOUCH_S
        return bool(free[neighbour] and adjacent and values[neighbour] >= floor)

    first = last = seed
    while first > 0 and joins(first, first - 1):
        first -= 1
    while last + 1 < len(values) and joins(last, last + 1):
        last += 1
    return first, last


def _moment(
    windows: Windows,
    order_idx: np.ndarray,
    relevance: np.ndarray | None,
    span: tuple[int, int, int],
    starts: np.ndarray,
    ends: np.ndarray,
) -> Moment:
    first, last, best = span
    i = int(order_idx[best])
    return Moment(
        start_s=float(starts[first]),
        end_s=float(np.max(ends[first : last + 1])),
        relevance=_value(relevance, i),
        picture_score=_value(windows.picture_score, i),
        sound_score=_value(windows.sound_score, i),
        picture_relevance=_value(windows.picture_relevance, i),
        sound_relevance=_value(windows.sound_relevance, i),
        best_start_s=float(windows.start_s[i]),
        best_end_s=float(windows.end_s[i]),
    )


def _value(values: np.ndarray | None, i: int) -> float | None:
    if values is None or not math.isfinite(float(values[i])):
        return None
    return float(values[i])


def _trimmed(moments: list[Moment]) -> list[Moment]:
    """Later (weaker) moments give way where their span overlaps a better one's; a moment left
    with no span is dropped."""
    kept: list[Moment] = []
    for moment in moments:
        start, end = moment.start_s, moment.end_s
        for better in kept:
            if start < better.end_s and end > better.start_s:
                if start >= better.start_s:
                    start = better.end_s
                else:
                    end = min(end, better.start_s)
        if end - start > _TOUCH_S:
            kept.append(_with_span(moment, start, end))
    return kept


def _with_span(moment: Moment, start: float, end: float) -> Moment:
    return replace(moment, start_s=start, end_s=end)


def windows_from_streams(
    picture: list[tuple[float, float, float, float | None]],
    sound: list[tuple[float, float, float, float | None]],
) -> Windows:
    """One file's Windows from its picture and sound windows, each (start_s, end_s, score,
    relevance or None), joined on their span (a video's sound-track windows carry the picture
    windows' timestamps; to the millisecond)."""
    spans: dict[tuple[int, int], list[float]] = {}
    for column, rows in ((0, picture), (2, sound)):
        for start, end, score, rel in rows:
            row = spans.setdefault((round(start * 1000), round(end * 1000)), [math.nan] * 4)
            row[column] = score
            row[column + 1] = math.nan if rel is None else rel
    keys = sorted(spans)
    table = np.array([spans[k] for k in keys], dtype=np.float64).reshape(len(keys), 4)
    times = np.array(keys, dtype=np.float64).reshape(len(keys), 2) / 1000
    picture_rel = None if any(r[3] is None for r in picture) else table[:, 1]
    sound_rel = None if any(r[3] is None for r in sound) else table[:, 3]
    return Windows(
        times[:, 0],
        times[:, 1],
        table[:, 0],
        table[:, 2],
        picture_rel if picture else None,
        sound_rel if sound else None,
    )
