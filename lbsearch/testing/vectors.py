"""Clustered unit vectors that behave like real embeddings, for vector-index tests and benches.

Real LanguageBind vectors are not uniform on the sphere: they share a common direction
(unrelated items still have cosine ~0.15), form clusters of very different sizes (near-duplicate
photos, scenes of one video) and text queries sit apart from the media they match (the modality
gap). Uniform random vectors would make approximate search look better or worse than it is.
"""

from __future__ import annotations

import numpy as np


def clustered_vectors(
    count: int,
    dim: int = 768,
    *,
    clusters: int = 300,
    seed: int = 0,
    sample_seed: int | None = None,
    gap: float = 0.0,
) -> np.ndarray:
    """`count` L2-normalised float32 vectors from Gaussian clusters around shared centres.

    The centres depend on `seed` only, so data and queries drawn with the same `seed` and
    different `sample_seed`s come from the same clusters. Cluster sizes follow a Zipf-like law;
    each cluster has its own spread. `gap` shifts every vector along one fixed direction (use
    ~1.0 for queries, like text against media).
    """
    centres_rng = np.random.default_rng(seed)
    common = centres_rng.standard_normal(dim).astype(np.float32)
    shift = centres_rng.standard_normal(dim).astype(np.float32)
    centres = (0.6 * common + centres_rng.standard_normal((clusters, dim))).astype(np.float32)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.7
    weights /= weights.sum()
    spread = centres_rng.uniform(0.8, 1.4, clusters).astype(np.float32)
    rng = np.random.default_rng(seed + 1 if sample_seed is None else sample_seed)
    labels = rng.choice(clusters, size=count, p=weights)
    noise = rng.standard_normal((count, dim), dtype=np.float32)
    vectors = centres[labels] + spread[labels, None] * noise + gap * shift
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of `truth` (exact top-k ids) present in the row of `found`."""
    k = truth.shape[1]
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / k
