"""How the pipeline reports what it does. The core never prints: the CLI implements `Progress`.

Events are small frozen dataclasses, delivered on the pipeline's (main) thread, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lbsearch.catalog import OfflineFolder, RunCounts


@dataclass(frozen=True)
class Planned:
    """The walk is done and the catalog consulted (no file read yet): what the run will look at.

    Each file to check is then read (`Hashed`), while decoding already runs, and ends as a
    `FileDone`, a `FileFailed` or (a name without extension that is not media) a `Skipped`."""

    found: int
    unchanged: int
    to_check: int  # new, changed or retried files: classified and hashed, then indexed
    check_bytes: int  # their total size: what hashing reads


@dataclass(frozen=True)
class Hashed:
    """A file to check was read (classified and hashed); `bytes` 0 when its hash was known."""

    path: str
    bytes: int


@dataclass(frozen=True)
class Skipped:
    """A file to check turned out not to be media (a name without extension): nothing recorded."""

    path: str


@dataclass(frozen=True)
class FileDone:
    path: str
    modality: str
    segments: int
    reused: bool = False


@dataclass(frozen=True)
class FileFailed:
    path: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Warning_:
    """Something worth telling that is not a file failure (an unreadable folder, a skipped root)."""

    path: str
    detail: str


@dataclass(frozen=True)
class SegmentsEmbedded:
    modality: str
    count: int


@dataclass(frozen=True)
class Swept:
    removed: int


@dataclass(frozen=True)
class Finished:
    counts: RunCounts
    segments_embedded: int
    seconds: float
    interrupted: bool = False
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    offline: tuple[OfflineFolder, ...] = ()  # folders that could not be listed: files kept


Event = (
    Planned
    | Hashed
    | Skipped
    | FileDone
    | FileFailed
    | Warning_
    | SegmentsEmbedded
    | Swept
    | Finished
)


class Progress(Protocol):
    def __call__(self, event: Event) -> None: ...


def ignore_progress(event: Event) -> None:
    """A Progress that drops every event."""
