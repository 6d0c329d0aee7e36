"""Synthetic benchmark of lbsearch's scoring pipeline: raw cosine -> hubness-corrected ->
calibrated relevance -> cut-off, on a planted embedding space.

The space: concepts are random directions on the sphere; each modality's items sit in their own
cone (a modality direction added to every item, a modality-specific signal strength and spread);
text queries sit in a text cone. The image cone leans towards the text cone (so raw cosines
favour images for every query, as real language-bound towers do) and audio carries the weakest
signal. Planted hubs (irrelevant items near the text cone) come up for every query. The
reference bank is 1,000 text queries of other concepts, drawn like the real captions are.

It scores every (query, item) pair four ways and prints, with the targets of issue 17:
- mAP of the merged lists (relevant: same concept, any modality);
- best single-threshold F1 (one threshold over every pair, the best one for each scoring);
- the share of queries whose relevant items of the weakest modality (audio) reach the top 20;
- hubness: the skewness of N10 (how often each item is in a query's top 10);
- for calibrated relevance, per-query precision/recall/F1 of the default cut-off;
- example-file queries (`--like`): one item of each concept as the query, with file hubs planted
  (per modality, items at the centre of its items, pulled towards the centre of all: they come
  up for examples of their modality, not for texts), scored raw,
  corrected with the caption bank's bias (what file queries got before their own column) and
  corrected with the bias against a sample of the library's own items (lbsearch now): mAP and
  N10 skewness over other items as probe queries.

    .venv/bin/python bench/relevance.py [--seed N] [--alpha A] [--k K]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from lbsearch.config import RelevanceConfig
from lbsearch.search.relevance import Calibration, cut_off
from lbsearch.vectors.bias import null_moments, segment_biases
from lbsearch.vectors.filesample import FileSample, SampleGroup

DIM = 128
MODALITIES = {  # name: (signal, lean towards the text cone, cone strength, noise)
    "image": (0.55, 0.45, 0.6, 1.0),
    "video": (0.45, 0.20, 0.7, 1.0),
    "audio": (0.25, 0.00, 0.8, 1.1),
    "depth": (0.35, 0.10, 0.9, 0.9),
    "thermal": (0.35, 0.05, 0.9, 0.9),
}
TEXT = (0.6, 0.5, 0.7)  # signal, cone strength, noise of text queries
CONCEPTS, PER_CONCEPT, BACKGROUND, HUBS = 60, 4, 300, 8


@dataclass
class Space:
    items: np.ndarray  # (n, d)
    modality: np.ndarray  # (n,) index into MODALITIES
    concept: np.ndarray  # (n,) -1: background or hub
    queries: np.ndarray  # (CONCEPTS, d), query i is about concept i
    bank: np.ndarray  # (1000, d)
    probe: np.ndarray  # (1000, d) other text queries, for the hubness count


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def plant(seed: int) -> Space:
    rng = np.random.default_rng(seed)
    concepts = _unit(rng.normal(size=(CONCEPTS + 3000, DIM)))
    text_cone = _unit(rng.normal(size=DIM))

    def texts(ids: np.ndarray) -> np.ndarray:
        signal, cone, noise = TEXT
        g = rng.normal(size=(len(ids), DIM)) / np.sqrt(DIM)
        return _unit(signal * concepts[ids] + cone * text_cone + noise * g)

    items, modality, concept = [], [], []
    for m, (signal, lean, cone, noise) in enumerate(MODALITIES.values()):
        direction = _unit(lean * text_cone + (1 - lean) * _unit(rng.normal(size=DIM)))
        ids = np.concatenate(
            [np.repeat(np.arange(CONCEPTS), PER_CONCEPT), rng.integers(CONCEPTS, 3000, BACKGROUND)]
        )
        g = rng.normal(size=(len(ids), DIM)) / np.sqrt(DIM)
        items.append(_unit(signal * concepts[ids] + cone * direction + noise * g))
        concept.append(np.where(ids < CONCEPTS, ids, -1))
        hubs = _unit(0.6 * text_cone + 0.5 * direction + 0.3 * rng.normal(size=(HUBS, DIM)) / 3)
        items.append(hubs)
        concept.append(np.full(HUBS, -1))
        modality.append(np.full(len(ids) + HUBS, m))
    return Space(
        items=np.vstack(items).astype(np.float32),
        modality=np.concatenate(modality),
        concept=np.concatenate(concept),
        queries=texts(np.arange(CONCEPTS)).astype(np.float32),
        bank=texts(rng.integers(CONCEPTS + 1000, CONCEPTS + 3000, 1000)).astype(np.float32),
        probe=texts(rng.integers(CONCEPTS, CONCEPTS + 1000, 1000)).astype(np.float32),
    )


# ------------------------------------------------------------------------------- scoring


def scorings(space: Space, alpha: float, k: int) -> dict[str, np.ndarray]:
    """(queries x items) scores per scoring, for the eval queries and the probe queries."""
    biases = segment_biases(space.bank, space.items, k)
    out = {}
    for name, a, calibrate in (
        ("raw cosine", 0.0, False),
        ("z-score only", 0.0, True),
        ("corrected only", alpha, False),
        ("corrected+calibrated", alpha, True),
    ):
        queries = np.vstack([space.queries, space.probe])
        s = (queries @ space.items.T).astype(np.float64) - a * biases[None, :]
        if calibrate:
            for m in range(len(MODALITIES)):
                cols = space.modality == m
                moments = null_moments(space.bank, space.items[cols], biases[cols])
                cal = Calibration.from_moments(moments, a)
                assert cal is not None
                s[:, cols] = cal.relevance(s[:, cols])
        out[name] = s
    return out


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    if not hits.any():
        return 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def best_f1(scores: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """Best F1 of one threshold over every pair, and that threshold."""
    flat, truth = scores.ravel(), relevant.ravel()
    order = np.argsort(-flat, kind="stable")
    tp = np.cumsum(truth[order])
    precision = tp / np.arange(1, len(flat) + 1)
    recall = tp / max(1, truth.sum())
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(flat[order[best]])


def skewness(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    return float(((x - x.mean()) ** 3).mean() / max(x.std() ** 3, 1e-12))


def measure(space: Space, scores: np.ndarray) -> dict[str, float]:
    n = len(space.queries)
    ev, probe = scores[:n], scores[n:]
    relevant = space.concept[None, :] == np.arange(n)[:, None]
    weakest = space.modality == list(MODALITIES).index("audio")
    top20 = np.argsort(-ev, axis=1)[:, :20]
    reach = np.mean([(relevant[i, top20[i]] & weakest[top20[i]]).any() for i in range(n)])
    top10 = np.argsort(-probe, axis=1)[:, :10]
    n10 = np.bincount(top10.ravel(), minlength=len(space.items))
    f1, threshold = best_f1(ev, relevant)
    return {
        "mAP": float(np.mean([average_precision(ev[i], relevant[i]) for i in range(n)])),
        "F1": f1,
        "threshold": threshold,
        "audio@20": float(reach),
        "N10 skew": skewness(n10),
    }


def cutoff_quality(space: Space, relevance: np.ndarray, config: RelevanceConfig) -> dict:
    """Per-query precision and recall of the default cut-off (no count limit)."""
    n = len(space.queries)
    precision, recall = [], []
    for i in range(n):
        relevant = space.concept == i
        order = np.argsort(-relevance[i], kind="stable")
        cut = cut_off(
            relevance[i][order],
            min_relevance=config.min_relevance,
            gap=config.autocut_gap,
            explicit=False,
        )
        kept = order[cut.keep] if not cut.weak else order[:0]
        hits = relevant[kept].sum()
        precision.append(hits / len(kept) if len(kept) else 0.0)
        recall.append(hits / relevant.sum())
    p, r = float(np.mean(precision)), float(np.mean(recall))
    return {"precision": p, "recall": r, "F1": 2 * p * r / (p + r) if p + r else 0.0}


# ------------------------------------------------------------------ example-file queries

FILE_HUBS, SAMPLE = 8, 1000


def with_file_hubs(space: Space, seed: int) -> Space:
    """`space` plus FILE_HUBS items per modality at the centre of its items, pulled towards the
    centre of all (own generator: the text figures above stay as they are)."""
    rng = np.random.default_rng(seed + 1000)
    centre = _unit(space.items.mean(axis=0))
    hubs, modality = [], []
    for m in range(len(MODALITIES)):
        noise = rng.normal(size=(FILE_HUBS, DIM)) / np.sqrt(DIM)
        mine = space.items[space.modality == m].mean(axis=0)
        hubs.append(_unit(0.3 * centre + _unit(mine) + 0.2 * noise))
        modality.append(np.full(FILE_HUBS, m))
    return Space(
        items=np.vstack([space.items, *hubs]).astype(np.float32),
        modality=np.concatenate([space.modality, *modality]),
        concept=np.concatenate([space.concept, np.full(FILE_HUBS * len(MODALITIES), -1)]),
        queries=space.queries,
        bank=space.bank,
        probe=space.probe,
    )


def file_queries(space: Space, alpha: float, k: int, seed: int) -> dict[str, dict[str, float]]:
    """Examples as queries: mAP (relevant: the other items of the example's concept, any
    modality; the example itself never ranked) and N10 skewness over 1,000 probe examples."""
    rng = np.random.default_rng(seed + 2000)
    n, ids = len(space.items), np.arange(len(space.items))
    examples = np.array([rng.choice(np.flatnonzero(space.concept == c)) for c in range(CONCEPTS)])
    probes = rng.choice(n, size=min(1000, n), replace=False)
    share = SAMPLE // len(MODALITIES)
    groups = tuple(
        SampleGroup(name, "m", members, space.items[members])
        for m, name in enumerate(MODALITIES)
        for members in [np.sort(rng.choice(np.flatnonzero(space.modality == m), share, False))]
    )
    sample = FileSample(groups, k, SAMPLE, n)
    file_bias = sample.biases(ids, space.items)
    assert file_bias is not None
    text_bias = segment_biases(space.bank, space.items, k)
    out = {}
    for name, biases in (
        ("raw cosine", np.zeros(n)),
        ("caption-bank bias", alpha * text_bias),
        ("library-sample bias", alpha * file_bias),
    ):

        def scores(rows: np.ndarray, biases: np.ndarray = biases) -> np.ndarray:
            s = (space.items[rows] @ space.items.T).astype(np.float64) - biases[None, :]
            s[np.arange(len(rows)), rows] = -np.inf  # an example never comes back
            return s

        ev, probe = scores(examples), scores(probes)
        relevant = space.concept[None, :] == space.concept[examples][:, None]
        relevant[np.arange(len(examples)), examples] = False
        n10 = np.bincount(np.argsort(-probe, axis=1)[:, :10].ravel(), minlength=n)
        hubs = np.arange(n) >= n - FILE_HUBS * len(MODALITIES)  # the planted file hubs
        out[name] = {
            "mAP": float(np.mean([average_precision(ev[i], relevant[i]) for i in range(len(ev))])),
            "N10 skew": skewness(n10),
            "hubs@10": float(np.isin(np.argsort(-ev, axis=1)[:, :10], np.flatnonzero(hubs)).mean()),
        }
    return out


def print_file_queries(space: Space, alpha: float, k: int, seed: int) -> None:
    found = file_queries(with_file_hubs(space, seed), alpha, k, seed)
    print(f"\nexample-file queries ({CONCEPTS}, one per concept; {FILE_HUBS} file hubs per "
          f"modality; library sample {SAMPLE}):")  # fmt: skip
    print(f"{'scoring':<22}{'mAP':>8}{'N10 skew':>10}{'file hubs in top 10':>21}")
    for name, r in found.items():
        print(f"{name:<22}{r['mAP']:8.3f}{r['N10 skew']:10.2f}{r['hubs@10']:21.3f}")
    raw, now = found["raw cosine"], found["library-sample bias"]
    ok = now["mAP"] > raw["mAP"] and now["N10 skew"] < raw["N10 skew"]
    print(f"file-query hub correction helps (mAP up, skewness down): {'yes' if ok else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--alpha", type=float, default=RelevanceConfig().alpha)
    parser.add_argument("--k", type=int, default=RelevanceConfig().bank_k)
    args = parser.parse_args()
    space = plant(args.seed)
    results = {name: measure(space, s) for name, s in scorings(space, args.alpha, args.k).items()}
    print(f"seed {args.seed}, alpha {args.alpha}, k {args.k}, {len(space.items)} items, "
          f"{len(space.queries)} queries, bank 1000")  # fmt: skip
    print(f"{'scoring':<22}{'mAP':>8}{'F1':>8}{'thresh':>9}{'audio@20':>10}{'N10 skew':>10}")
    for name, r in results.items():
        print(
            f"{name:<22}{r['mAP']:8.3f}{r['F1']:8.3f}{r['threshold']:9.3f}"
            f"{r['audio@20']:10.2f}{r['N10 skew']:10.2f}"
        )
    raw, best = results["raw cosine"], results["corrected+calibrated"]
    checks = [
        ("mAP >= 1.3x raw", best["mAP"] / raw["mAP"], best["mAP"] >= 1.3 * raw["mAP"]),
        ("threshold F1 >= 1.3x raw", best["F1"] / raw["F1"], best["F1"] >= 1.3 * raw["F1"]),
        ("N10 skewness not worse", best["N10 skew"] - raw["N10 skew"],
         best["N10 skew"] <= raw["N10 skew"]),
    ]  # fmt: skip
    for what, value, ok in checks:
        print(f"target {what:<26} {value:7.2f}  {'met' if ok else 'NOT MET'}")
    calibrated = scorings(space, args.alpha, args.k)["corrected+calibrated"][: len(space.queries)]
    cut = cutoff_quality(space, calibrated, RelevanceConfig(alpha=args.alpha, bank_k=args.k))
    print(
        f"default cut-off (min_relevance {RelevanceConfig().min_relevance}, autocut gap "
        f"{RelevanceConfig().autocut_gap}): precision {cut['precision']:.3f}, "
        f"recall {cut['recall']:.3f}, F1 {cut['F1']:.3f}"
    )
    print_file_queries(space, args.alpha, args.k, args.seed)


if __name__ == "__main__":
    main()
