"""Scores you can compare across modalities: calibration to one scale, and the cut-off.

The pipeline (each step a small pure function over arrays):

1. raw cosine `s = q.v`, per modality's index;
2. hubness-corrected `c = s - alpha * bias(v)`, computed inside FAISS (lbsearch.vectors.bias);
3. calibrated relevance `r = (c - mean) / std`, where mean and std are those of `c` for a random,
   unrelated query: the modality's null distribution, measured with the reference bank (text
   queries) or the library's own segments (example files). A z-score rather than a probability:
   on the synthetic benchmark (bench/relevance.py) it ranks the same as a logistic fit would
   (both are monotone per modality) and needs no labelled pairs to fit; relevance 0 is "like a
   random query", each unit one standard deviation of the null above it;
4. the cut-off: results with relevance >= `min_relevance`, ended early by an autocut at the first
   gap between consecutive relevances wider than `autocut_gap`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WEAK_SHOWN = 3  # results shown, marked weak, when none clears the bar


@dataclass(frozen=True)
class Calibration:
    """The null distribution of corrected scores of one modality, for one kind of query."""

    mean: float
    std: float

    @classmethod
    def from_moments(cls, moments: Sequence[float] | None, alpha: float) -> Calibration | None:
        """From [E s, E b, Var s, Var b, Cov(s, b)] (vectors.bias.null_moments) and alpha."""
        if not moments or len(moments) != 5:
            return None
        ms, mb, vs, vb, cov = (float(m) for m in moments)
        variance = vs + alpha * alpha * vb - 2 * alpha * cov
        if not math.isfinite(variance) or variance <= 1e-12:
            return None
        return cls(ms - alpha * mb, math.sqrt(variance))

    def relevance(self, corrected: np.ndarray | float) -> np.ndarray:
        return (np.asarray(corrected, dtype=np.float64) - self.mean) / self.std


def corrected(scores: np.ndarray, biases: np.ndarray, alpha: float) -> np.ndarray:
    """Step 2 outside FAISS (the benchmark, tests): s - alpha * bias."""
    return np.asarray(scores, dtype=np.float64) - alpha * np.asarray(biases, dtype=np.float64)


def autocut(relevances: Sequence[float] | np.ndarray, gap: float) -> int:
    """How many of the (descending) relevances come before the first drop wider than `gap`
    (all of them when there is none; gap <= 0 turns autocut off)."""
    values = np.asarray(relevances, dtype=np.float64)
    if gap <= 0 or len(values) < 2:
        return len(values)
    drops = np.flatnonzero(values[:-1] - values[1:] > gap)
    return int(drops[0]) + 1 if len(drops) else len(values)


@dataclass(frozen=True)
class CutOff:
    """Which ranked results a query shows (`keep`, in the ranking's order); `weak`: none
    cleared the bar and these are the best few by relevance, shown marked."""

    keep: np.ndarray
    weak: bool


def cut_off(
    relevances: Sequence[float], *, min_relevance: float, gap: float, explicit: bool
) -> CutOff:
    """The results a query shows, as a mask over them in ranked order (any order).

    `explicit`: the user gave the bar (--min-relevance): it replaces the default cut-off, with
    no autocut. Otherwise the default bar, then the autocut over the relevances that cleared it,
    best first. When none clears it, the best few by relevance, marked weak."""
    values = np.asarray(relevances, dtype=np.float64)
    above = values >= min_relevance
    if explicit:
        return CutOff(above, weak=False)
    order = np.argsort(-values, kind="stable")
    cleared = order[above[order]]
    keep = np.zeros(len(values), dtype=bool)
    keep[cleared[: autocut(values[cleared], gap)]] = True
    if not keep.any() and len(values):
        keep[order[:WEAK_SHOWN]] = True
        return CutOff(keep, weak=True)
    return CutOff(keep, weak=False)
