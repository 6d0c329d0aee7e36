"""What one write transaction did to each modality's segments, for the vector indices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection

from ..types import Modality
from .records import CatalogError, ModalityDelta, ModalityState
from .rows import update_modality


class Deltas:
    """Collects the segment ids one transaction adds and removes, per modality."""

    def __init__(self, path: Path, states: dict[Modality, ModalityState]) -> None:
        self.path = path
        self.states = states
        self.added: dict[Modality, dict[int, np.ndarray]] = {}
        self.removed: dict[Modality, list[int]] = {}
        self.dims: dict[Modality, int] = {}

    def add(self, file_path: str, seg: Any, segment_id: int) -> np.ndarray:
        state = self.states.get(seg.modality)
        if state is None or state.model_id != seg.model_id:
            known = state.model_id if state else "nothing"
            raise CatalogError(
                f"{file_path}: {seg.modality} segment from model {seg.model_id!r}, but the "
                f"catalog's {seg.modality} model is {known!r}",
                "call set_modality before writing; this is a bug in the caller",
            )
        vector = np.asarray(seg.vector, dtype=np.float32)
        dim = self.dims.setdefault(seg.modality, state.dim or len(vector))
        if len(vector) != dim:
            raise CatalogError(
                f"{file_path}: {seg.modality} vector has {len(vector)} dimensions, "
                f"the modality has {dim}",
                "vectors of one modality must come from one model; this is a bug in the caller",
            )
        self.added.setdefault(seg.modality, {})[segment_id] = vector
        return vector

    def remove(self, rows: list[tuple[int, str]]) -> None:
        for segment_id, name in rows:
            modality = Modality(name)
            if self.added.get(modality, {}).pop(segment_id, None) is None:
                self.removed.setdefault(modality, []).append(segment_id)

    def commit(self, conn: Connection, now: float) -> dict[Modality, ModalityDelta]:
        deltas = {}
        for modality in sorted(set(self.added) | set(self.removed)):
            added = self.added.get(modality, {})
            removed = self.removed.get(modality, [])
            if not added and not removed:
                continue
            state = self.states[modality]
            dim = self.dims.get(modality, state.dim or 0)
            update_modality(conn, modality, generation=state.generation + 1, dim=dim or None)
            deltas[modality] = ModalityDelta(
                modality=modality,
                generation_before=state.generation,
                generation=state.generation + 1,
                added_ids=np.fromiter(added, dtype=np.int64, count=len(added)),
                added_vectors=np.stack(list(added.values())).astype(np.float32)
                if added
                else np.zeros((0, dim), dtype=np.float32),
                removed_ids=np.asarray(removed, dtype=np.int64),
                dim=dim or None,
            )
        return deltas
