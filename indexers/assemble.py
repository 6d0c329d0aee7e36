"""From decoded segments to catalog rows: per-modality encoder batches, then whole files.

A file is written once every modality it feeds is settled: embedded, reused, or (for a video's
sound track) found empty. Decoded segments arrive in parts (a long video a few windows at a
time) and are embedded as batches fill, so memory holds a batch, not a file. Files are written in
small transactions as they complete.

Embedding does not wait for the device: a batch is submitted, and its vectors are placed when the
next batch is submitted or when the run loop finds them ready (`collect`). On CUDA the GPU
computes one batch while this thread receives, stacks and uploads the next one and writes the
files already complete; a CPU back-end computes while it is called, so nothing stays in flight.

Within one run, a file with the same content (and target modality) as one already being decoded
follows it: it gets a copy of the first one's vectors instead of being decoded and embedded again,
as across runs. If the first one fails for that modality, the followers are decoded on their own
(`take_requeued`), since a failure can belong to the path (vanished, unreadable) and not to the
content.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lbsearch.catalog import FailedFile, IndexedFile, NewSegment, StoredSegment
from lbsearch.embedder import Embedder
from lbsearch.embedder.protocol import Joined, VectorsInFlight, submit_segments
from lbsearch.errors import MediaError
from lbsearch.media.probe import dimensions
from lbsearch.types import Modality, Segment

from .plan import Unit
from .progress import Event, FileDone, FileFailed, Progress, SegmentsEmbedded, Warning_


@dataclass(frozen=True)
class Completed:
    """A file ready to be written, with what the run totals need to know about it."""

    row: IndexedFile | FailedFile
    known: bool = False  # the catalog had the path (an update)
    reused: bool = False  # every vector came from another file


# Encoder calls left unplaced after a submit: one keeps the device busy while this thread
# prepares the next; more would only hold more page-locked and device memory.
_IN_FLIGHT = 1


@dataclass
class _Pending:
    unit_index: int
    segments: list[Segment]
    dropped: bool = False  # its target failed while the vectors were in flight


@dataclass(frozen=True)
class _InFlight:
    modality: Modality
    items: list[_Pending]
    vectors: VectorsInFlight


@dataclass
class _FileState:
    unit: Unit
    open: set[Modality]  # targets still being decoded (or waiting for the file they follow)
    unencoded: Counter[Modality] = field(default_factory=Counter)
    segments: list[NewSegment] = field(default_factory=list)
    failed_targets: set[Modality] = field(default_factory=set)
    failure: FailedFile | None = None
    warnings: list[str] = field(default_factory=list)  # told only if the file does not fail
    decoded: bool = False
    done: bool = False


class Assembler:
    def __init__(self, encoders: Embedder, batch_size: int, progress: Progress) -> None:
        self.encoders = encoders
        self.batch_size = max(1, batch_size)
        self.progress = progress
        self.embedded = 0
        self._ready: list[Completed] = []
        self._units: list[_FileState] = []
        self._pending: dict[Modality, list[_Pending]] = {}
        self._in_flight: deque[_InFlight] = deque()
        self._leaders: dict[tuple[str, Modality], int] = {}  # (content hash, target) -> unit
        self._followers: dict[tuple[int, Modality], list[int]] = {}
        self._requeued: list[tuple[int, Modality]] = []

    def add_unit(self, unit: Unit) -> tuple[int, list[Modality]]:
        """Register a probed file (its `reused` already filled from the catalog); returns its
        index and the targets it must decode itself."""
        index = len(self._units)
        state = _FileState(unit, set(unit.to_decode))
        self._units.append(state)
        for modality, stored in unit.reused.items():
            state.segments += _reused(stored, modality, self.encoders.model_id(modality))
        decode = []
        for target in unit.to_decode:
            leader = self._leaders.get((unit.content_hash, target))
            if leader is None:
                self._leaders[(unit.content_hash, target)] = index
                decode.append(target)
            elif target in self._units[leader].failed_targets:
                decode.append(target)  # the path may be at fault, not the content: try this one
            elif self._settled(leader, target):
                self._copy_from(leader, index, target)
            else:
                self._followers.setdefault((leader, target), []).append(index)
        state.decoded = bool(decode)
        self._complete_if_done(index)
        return index, decode

    def add_part(self, index: int, modality: Modality, segments: list[Segment]) -> None:
        """Decoded segments of one target of a file (more may follow)."""
        if not segments or modality in self._units[index].failed_targets:
            return
        self._units[index].unencoded[modality] += len(segments)
        self._pending.setdefault(modality, []).append(_Pending(index, segments))
        if sum(len(p.segments) for p in self._pending[modality]) >= self.batch_size:
            self.encode(modality)

    def add_embedded(self, index: int, modality: Modality, segments: list[NewSegment]) -> None:
        """Segments of one target of a file embedded elsewhere (Ray actors), vectors included."""
        if not segments or modality in self._units[index].failed_targets:
            return
        self._units[index].segments += segments
        self.embedded += len(segments)
        self.progress(SegmentsEmbedded(modality.value, len(segments)))

    def end_target(self, index: int, modality: Modality, error: MediaError | None) -> None:
        """The decoder is done with one target of a file: all its parts came, or it failed."""
        if error is not None:
            self._failed_target(index, modality, error)
        self._units[index].open.discard(modality)
        self._target_changed(index, modality)

    def encode(self, modality: Modality) -> None:
        """Submit every pending segment of `modality` (in encoder batches); the vectors of the
        previous submit are placed (waited for, if the device is not done)."""
        pending = self._pending.pop(modality, [])
        flat = [segment for item in pending for segment in item.segments]
        if not flat:
            return
        step = self.batch_size
        batches = [
            submit_segments(self.encoders, modality, flat[i : i + step])
            for i in range(0, len(flat), step)
        ]
        self._in_flight.append(_InFlight(modality, pending, Joined(batches)))
        self._place_in_flight(keep=_IN_FLIGHT)

    def encode_all(self) -> None:
        """Submit everything pending and place every vector (the end of a run)."""
        for modality in list(self._pending):
            self.encode(modality)
        self._place_in_flight(keep=0)

    def collect(self) -> None:
        """Place the vectors the device has finished, without waiting."""
        self._place_in_flight(keep=len(self._in_flight))

    def take_ready(self) -> list[Completed]:
        ready, self._ready = self._ready, []
        return ready

    def take_requeued(self) -> list[tuple[int, Modality]]:
        """(file index, target) of followers whose file failed: they must be decoded."""
        requeued, self._requeued = self._requeued, []
        return requeued

    def unit(self, index: int) -> Unit:
        return self._units[index].unit

    # ---- internals ---------------------------------------------------------------------------

    def _place_in_flight(self, keep: int) -> None:
        """Place submitted vectors in order: those ready, and the oldest beyond `keep`."""
        while self._in_flight and (
            len(self._in_flight) > keep or self._in_flight[0].vectors.ready()
        ):
            self._place(self._in_flight.popleft())

    def _place(self, batch: _InFlight) -> None:
        vectors = batch.vectors.result().astype(np.float32, copy=False)
        modality, model_id, offset = batch.modality, self.encoders.model_id(batch.modality), 0
        self.embedded += len(vectors)
        self.progress(SegmentsEmbedded(modality.value, len(vectors)))
        for item in batch.items:
            count, state = len(item.segments), self._units[item.unit_index]
            if not item.dropped:
                rows = vectors[offset : offset + count]
                state.segments += [
                    NewSegment(modality, segment.start_s, segment.end_s, model_id, vector)
                    for segment, vector in zip(item.segments, rows, strict=True)
                ]
                state.unencoded[modality] -= count
                self._target_changed(item.unit_index, modality)
            offset += count

    def _settled(self, index: int, modality: Modality) -> bool:
        state = self._units[index]
        return modality not in state.open and not state.unencoded[modality]

    def _target_changed(self, index: int, modality: Modality) -> None:
        if self._settled(index, modality):
            for follower in self._followers.pop((index, modality), []):
                self._copy_from(index, follower, modality)
        self._complete_if_done(index)

    def _copy_from(self, leader: int, follower: int, modality: Modality) -> None:
        source, state = self._units[leader], self._units[follower]
        if modality in source.failed_targets:
            state.decoded = True
            self._leaders[(state.unit.content_hash, modality)] = follower
            self._requeued.append((follower, modality))
            return
        state.segments += [s for s in source.segments if s.modality is modality]
        state.open.discard(modality)
        self._complete_if_done(follower)

    def _failed_target(self, index: int, modality: Modality, error: MediaError) -> None:
        state = self._units[index]
        silent = modality is not state.unit.modality and error.reason == "no_audio"
        if not silent:  # a silent video's sound track is settled empty, not failed
            state.failed_targets.add(modality)
        state.segments = [s for s in state.segments if s.modality is not modality]
        kept = []
        for item in self._pending.get(modality, []):
            if item.unit_index == index:
                state.unencoded[modality] -= len(item.segments)
            else:
                kept.append(item)
        self._pending[modality] = kept
        for batch in self._in_flight:  # computed all the same, but not placed
            for item in batch.items:
                if batch.modality is modality and item.unit_index == index and not item.dropped:
                    item.dropped = True
                    state.unencoded[modality] -= len(item.segments)
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
                found.ctime_ns,
                found.dev,
                found.ino,
            )
        elif error.reason != "no_audio":  # a silent video is normal; other errors are told
            state.warnings.append(f"sound track: {error.detail}")

    def _complete_if_done(self, index: int) -> None:
        state = self._units[index]
        if state.open or state.done or any(state.unencoded.values()):
            return
        state.done = True
        unit = state.unit
        for target in unit.to_decode:  # later files with this content find it in the catalog
            if self._leaders.get((unit.content_hash, target)) == index:
                del self._leaders[(unit.content_hash, target)]
        reused = not state.decoded
        self._ready.append(Completed(_row(state), unit.known, reused))
        event: Event
        if state.failure is not None:
            event = FileFailed(state.failure.path, state.failure.reason, state.failure.detail)
        else:
            for warning in state.warnings:  # a failed file's own error says it all
                self.progress(Warning_(str(unit.found.path), warning))
            event = FileDone(str(unit.found.path), unit.modality.value, len(state.segments), reused)
        self.progress(event)
        state.segments = []  # written: the vectors are the catalog's now


def _row(state: _FileState) -> IndexedFile | FailedFile:
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
        ctime_ns=found.ctime_ns,
        dev=found.dev,
        ino=found.ino,
    )


def _reused(stored: Sequence[StoredSegment], modality: Modality, model_id: str) -> list[NewSegment]:
    return [
        NewSegment(modality, s.start_s, s.end_s, model_id, s.vector, s.preprocess_version)
        for s in stored
    ]
