"""The reference bank of example-file queries: a fixed random sample of the library's segments.

An example file may be of any modality, so the sample draws from every modality the library
holds, an equal share each (a small modality is still represented), at most one segment per file
(neighbouring windows of one video are near-copies: a video in the sample would otherwise make
its own other windows look like hubs). Each segment's file bias is the mean of its `k` best
similarities to the members of its vector size, its own entry left out when it is a member.

The sample is drawn once and saved (`vectors/files.sample`, one atomic rename). It is the file
bias's fingerprint: segments added later get their file bias against the same sample, so biases
never drift. It is drawn again (`due`) when the library has grown `growth` times since it was
drawn, a modality has no members (new) or members of another model (re-embedded), or the size or
k setting changed; every index is then rebuilt from stored vectors in one pass.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bias import NO_BIAS, read_head, segment_biases, write_atomically

SAMPLE_NAME = "files.sample"


@dataclass(frozen=True)
class SampleGroup:
    """The members drawn from one modality: their segment ids and stored vectors."""

    modality: str
    model_id: str
    ids: np.ndarray
    vectors: np.ndarray


@dataclass(frozen=True)
class FileSample:
    """Members of every modality, the k of the file biases, the size asked for, and the
    library's segment count when it was drawn."""

    groups: tuple[SampleGroup, ...]
    k: int
    size: int
    drawn_at: int
    _banks: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )  # bank(dim), made once: every search that scores stored vectors asks for it

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.k}".encode())
        for group in self.groups:
            digest.update(f"\n{group.modality}\n{group.model_id}\n".encode())
            digest.update(np.ascontiguousarray(group.ids, dtype=np.int64).tobytes())
        return "sample-" + digest.hexdigest()[:16]

    def bank(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the members of vector size `dim` (every modality's)."""
        if dim not in self._banks:
            groups = [g for g in self.groups if g.vectors.ndim == 2 and g.vectors.shape[1] == dim]
            ids = np.concatenate([g.ids for g in groups] or [np.zeros(0)]).astype(np.int64)
            vectors = [g.vectors for g in groups] or [np.zeros((0, dim))]
            self._banks[dim] = ids, np.concatenate(vectors).astype(np.float32)
        return self._banks[dim]

    def fingerprint_for(self, dim: int) -> str:
        """What an index of `dim`-d vectors records: NO_BIAS when no member has that size."""
        return self.fingerprint if len(self.bank(dim)[0]) else NO_BIAS

    def biases(self, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray | None:
        """(n,) file biases of segments `ids`; None when no member has their size."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        bank_ids, bank = self.bank(vectors.shape[1])
        if not len(bank) or not len(vectors):
            return None
        ids = np.asarray(ids, dtype=np.int64)
        return segment_biases(bank, vectors, self.k, ids, bank_ids)

    def due(self, models: dict[str, str], total: int, size: int, k: int, growth: float) -> str:
        """Why the sample should be drawn again ("" when it should not), given the model of
        each modality with segments now and their segment count."""
        drawn = {g.modality: g.model_id for g in self.groups}
        if (self.size, self.k) != (size, k):
            return "the sample size or k changed"
        if any(drawn.get(m) != model for m, model in models.items()):
            return "a modality is new to the sample, or was re-embedded"
        if growth > 0 and total >= growth * max(1, self.drawn_at):
            return f"the library has grown {growth:g}x since the sample was drawn"
        return ""


def sample_path(directory: Path) -> Path:
    return directory / SAMPLE_NAME


def write_file_sample(path: Path, sample: FileSample) -> None:
    """Save with one atomic rename (a crash leaves the old sample or the new one)."""
    buffer = io.BytesIO()
    arrays: dict[str, np.ndarray] = {}
    for i, group in enumerate(sample.groups):
        arrays[f"ids{i}"] = np.asarray(group.ids, dtype=np.int64)
        arrays[f"vectors{i}"] = np.asarray(group.vectors, dtype=np.float32)
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    head = {
        "k": sample.k,
        "size": sample.size,
        "drawn_at": sample.drawn_at,
        "groups": [[g.modality, g.model_id] for g in sample.groups],
    }
    write_atomically(path, head, buffer.getvalue())


def read_file_sample(path: Path) -> FileSample | None:
    """The saved sample; None when missing or unreadable (file biases are then 0)."""
    try:
        head, payload = read_head(path.read_bytes())
        arrays = np.load(io.BytesIO(payload), allow_pickle=False)
        names = head["groups"]
        assert isinstance(names, list)
        groups = tuple(
            SampleGroup(str(m), str(model), arrays[f"ids{i}"], arrays[f"vectors{i}"])
            for i, (m, model) in enumerate(names)
        )
        return FileSample(
            groups, int(str(head["k"])), int(str(head["size"])), int(str(head["drawn_at"]))
        )
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return None
