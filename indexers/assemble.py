"""From decoded segments to catalog rows: per-modality encoder batches, then whole files.

A file is written once every modality it feeds is settled: embedded, reused, or (for a video's
sound track) found empty. Files are written in small transactions as they complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lbsearch.catalog import FailedFile, IndexedFile, NewSegment, StoredSegment
from lbsearch.embedder import Embedder
from lbsearch.errors import MediaError
from lbsearch.media.probe import dimensions
from lbsearch.types import Modality, Segment

from .plan import Unit
from .progress import Event, FileDone, FileFailed, Progress, SegmentsEmbedded, Warning_


@dataclass
class _Pending:
    unit_index: int
    segments: list[Segment]


@dataclass
class _Progressing:
    unit: Unit
    waiting: set[Modality]
    segments: list[NewSegment] = field(default_factory=list)
    failure: FailedFile | None = None
    done: bool = False


class Assembler:
    def __init__(
        self, units: list[Unit], encoders: Embedder, batch_size: int, progress: Progress
    ) -> None:
        self.encoders = encoders
        self.batch_size = max(1, batch_size)
        self.progress = progress
        self.ready: list[IndexedFile | FailedFile] = []
        self.embedded = 0
        self._units = [_Progressing(u, set(u.to_decode)) for u in units]
        self._pending: dict[Modality, list[_Pending]] = {}
        for index, state in enumerate(self._units):
            for modality, stored in state.unit.reused.items():
                state.segments += _reused(stored, modality, encoders.model_id(modality))
            self._complete_if_done(index)

    def add_decoded(
        self, index: int, modality: Modality, segments: list[Segment], error: MediaError | None
    ) -> None:
        state = self._units[index]
        if error is not None:
            self._failed_target(index, modality, error)
        elif segments:
            self._pending.setdefault(modality, []).append(_Pending(index, segments))
            if sum(len(p.segments) for p in self._pending[modality]) >= self.batch_size:
                self.encode(modality)
        else:
            state.waiting.discard(modality)
        self._complete_if_done(index)

    def encode(self, modality: Modality) -> None:
        """Embed every pending segment of `modality` (in encoder batches)."""
        pending = self._pending.pop(modality, [])
        flat = [segment for item in pending for segment in item.segments]
        if not flat:
            return
        chunks = [
            self.encoders.embed_segments(modality, flat[i : i + self.batch_size])
            for i in range(0, len(flat), self.batch_size)
        ]
        vectors = np.concatenate(chunks).astype(np.float32, copy=False)
        self.embedded += len(flat)
        self.progress(SegmentsEmbedded(modality.value, len(flat)))
        model_id, offset = self.encoders.model_id(modality), 0
        for item in pending:
            state = self._units[item.unit_index]
            for segment in item.segments:
                new = NewSegment(
                    modality, segment.start_s, segment.end_s, model_id, vectors[offset]
                )
                state.segments.append(new)
                offset += 1
            state.waiting.discard(modality)
            self._complete_if_done(item.unit_index)

    def encode_all(self) -> None:
        for modality in list(self._pending):
            self.encode(modality)

    def take_ready(self) -> list[IndexedFile | FailedFile]:
        ready, self.ready = self.ready, []
        return ready

    def _failed_target(self, index: int, modality: Modality, error: MediaError) -> None:
        state = self._units[index]
        state.waiting.discard(modality)
        if modality is state.unit.modality:
            found = state.unit.found
            state.failure = FailedFile(
                str(found.path),
                str(found.root),
                found.size,
                found.mtime_ns,
                error.reason,
                error.detail,
                state.unit.modality,
                state.unit.content_hash,
            )
        elif (
            error.reason != "no_audio"
        ):  # a silent video is normal; other sound-track errors are told
            self.progress(Warning_(str(state.unit.found.path), f"sound track: {error.detail}"))

    def _complete_if_done(self, index: int) -> None:
        state = self._units[index]
        if state.waiting or state.done:
            return
        self.ready.append(_row(state))
        event: Event
        if state.failure is not None:
            event = FileFailed(state.failure.path, state.failure.reason, state.failure.detail)
        else:
            reused = not state.unit.to_decode
            event = FileDone(
                str(state.unit.found.path), state.unit.modality.value, len(state.segments), reused
            )
        self.progress(event)
        state.done = True
        state.segments = []  # written: the vectors are the catalog's now


def _row(state: _Progressing) -> IndexedFile | FailedFile:
    if state.failure is not None:
        return state.failure
    unit, found = state.unit, state.unit.found
    size = dimensions(found.path, unit.modality)
    return IndexedFile(
        path=str(found.path),
        root=str(found.root),
        size=found.size,
        mtime_ns=found.mtime_ns,
        content_hash=unit.content_hash,
        modality=unit.modality,
        segments=tuple(sorted(state.segments, key=lambda s: (s.modality, s.start_s))),
        duration_s=max((s.end_s for s in state.segments), default=None) or None,
        width=size[0] if size else None,
        height=size[1] if size else None,
    )


def _reused(
    stored: tuple[StoredSegment, ...], modality: Modality, model_id: str
) -> list[NewSegment]:
    return [NewSegment(modality, s.start_s, s.end_s, model_id, s.vector) for s in stored]
