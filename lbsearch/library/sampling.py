"""Drawing the library's sample of its own segments (lbsearch.vectors.filesample) from the catalog."""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

import numpy as np

from ..types import Modality
from ..vectors.filesample import FileSample, SampleGroup

if TYPE_CHECKING:
    from ..catalog.store import Catalog

_CANDIDATES = 4  # segments looked at per member wanted: some share a file and are skipped


def draw_file_sample(catalog: Catalog, size: int, k: int) -> FileSample | None:
    """Up to `size` stored segments, an equal share per modality with segments, one per file.

    Random, but seeded by the library and its size: the same catalog gives the same sample."""
    states = {
        m: s for m, s in sorted(catalog.modality_states().items()) if s.dim and s.segment_count
    }
    if not states or size <= 0:
        return None
    total = sum(s.segment_count for s in states.values())
    seed = int(hashlib.sha256(f"{catalog.library_id}:{total}".encode()).hexdigest()[:8], 16)
    share = math.ceil(size / len(states))
    groups = []
    for number, (modality, state) in enumerate(states.items()):
        ids = _one_per_file(catalog, modality, share, np.random.default_rng([seed, number]))
        chunk = catalog.vectors_by_ids(modality, ids)
        groups.append(SampleGroup(modality.value, state.model_id, chunk.ids, chunk.vectors))
    return FileSample(tuple(groups), k, size, total)


def _one_per_file(
    catalog: Catalog, modality: Modality, share: int, rng: np.random.Generator
) -> np.ndarray:
    """`share` random segment ids of the modality, no two of one file (sorted)."""
    candidates = rng.permutation(catalog.segment_ids(modality).ids)[: _CANDIDATES * share]
    found = catalog.segments_by_ids(candidates)
    files: set[int] = set()
    chosen: list[int] = []
    for segment_id in candidates.tolist():
        hit = found.get(segment_id)
        if hit is None or hit.file.id in files:
            continue
        files.add(hit.file.id)
        chosen.append(segment_id)
        if len(chosen) == share:
            break
    return np.sort(np.array(chosen, dtype=np.int64))
