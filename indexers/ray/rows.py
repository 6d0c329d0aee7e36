"""The rows that flow through the Ray pipeline, and the driver's side of them.

Input: one row per (file, modality) to embed, keyed by the driver. The decode stage turns a row
into one row per segment (pixels), or one row carrying a reason code (the file failed) or none
(the part had no window). The encoder actors swap pixels for vectors. The driver gathers the rows
of every part of a key (`PartsCollector`) and gets whole targets back, in any order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lbsearch.catalog import NewSegment
from lbsearch.errors import MediaError
from lbsearch.media.reasons import media_error
from lbsearch.types import Modality

# columns of the rows; `count` is the number of segment rows its part produced (0: a status row)
KEY, PATH, PART, PARTS, FROM_S, TO_S = "key", "path", "part", "parts", "from_s", "to_s"
COUNT, START, END, PIXELS, VECTOR = "count", "start", "end", "pixels", "vector"
REASON, DETAIL, HINT, NODE = "reason", "detail", "hint", "node"


@dataclass(frozen=True)
class TargetJob:
    """One file to decode and embed for one modality; `key` is the driver's."""

    key: int
    path: str
    modality: Modality


@dataclass(frozen=True)
class Embedded:
    """Everything one target gave: its segments with vectors, or the reason it failed."""

    job: TargetJob
    segments: list[NewSegment]
    error: MediaError | None
    node: str = ""  # the node that reported the error, if any


def input_row(job: TargetJob) -> dict[str, object]:
    return {KEY: job.key, PATH: job.path, PART: 0, PARTS: 1, FROM_S: 0.0, TO_S: math.inf}


@dataclass
class _Gathering:
    parts: int
    expected: dict[int, int] = field(default_factory=dict)  # part -> rows it announced
    got: dict[int, int] = field(default_factory=dict)
    segments: list[NewSegment] = field(default_factory=list)
    errors: dict[int, tuple[MediaError, str]] = field(default_factory=dict)

    def complete(self) -> bool:
        return len(self.expected) == self.parts and self.got == self.expected


class PartsCollector:
    """Rows of every part of a target, back in whole targets."""

    def __init__(self, jobs: dict[int, TargetJob], model_ids: dict[Modality, str]) -> None:
        self.jobs, self.model_ids = jobs, model_ids
        self._open: dict[int, _Gathering] = {}

    def add(self, row: dict[str, object]) -> Embedded | None:
        """Take one row; the finished target when it was the last one missing."""
        key = int(_num(row[KEY]))
        job = self.jobs[key]
        state = self._open.setdefault(key, _Gathering(int(_num(row[PARTS]))))
        part, count = int(_num(row[PART])), int(_num(row[COUNT]))
        state.expected[part] = max(1, count)
        state.got[part] = state.got.get(part, 0) + 1
        if row[REASON]:
            error = MediaError(job.path, str(row[REASON]), str(row[DETAIL]), str(row[HINT]))
            state.errors[part] = (error, str(row[NODE]))
        elif count:
            vector = np.asarray(row[VECTOR], dtype=np.float32)
            start, end = float(_num(row[START])), float(_num(row[END]))
            model_id = self.model_ids[job.modality]
            state.segments.append(NewSegment(job.modality, start, end, model_id, vector))
        if not state.complete():
            return None
        del self._open[key]
        return self._finished(job, state)

    @property
    def pending(self) -> int:
        return len(self._open)

    def _finished(self, job: TargetJob, state: _Gathering) -> Embedded:
        if state.errors:  # the earliest failing part: where a whole-file decode would stop
            error, node = state.errors[min(state.errors)]
            return Embedded(job, [], error, node)
        segments = sorted(state.segments, key=lambda s: s.start_s)
        if not segments and job.modality is Modality.VIDEO and state.parts > 1:
            # decode() raises this for a video without frames; parts leave the verdict to us
            error = media_error(job.path, "no_video_frames", "no video frame could be decoded")
            return Embedded(job, [], error)
        return Embedded(job, segments, None)


def _num(value: object) -> float:
    """numpy scalars and Python numbers alike."""
    return float(value)  # type: ignore[arg-type]
