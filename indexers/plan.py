"""Probe and dedupe: decide, for every file found, what the run must do with it.

Unchanged files (same size and mtime as recorded) are settled without reading them. Other files
are classified (a 512-byte read) and hashed; content already embedded under another path, with
the same model, reuses its stored vectors instead of being decoded again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lbsearch.catalog import FailedFile, FileRecord, FileStatus, StoredSegment, hash_file
from lbsearch.config import Config
from lbsearch.embedder import Embedder
from lbsearch.errors import MediaError
from lbsearch.library import Library
from lbsearch.media import classify
from lbsearch.types import Modality

from .walk import FoundFile

_LOOKUP_CHUNK = 500


@dataclass
class Unit:
    """One file to (re-)index: its primary modality and every modality it feeds."""

    found: FoundFile
    modality: Modality
    content_hash: str
    targets: tuple[Modality, ...]
    reused: dict[Modality, tuple[StoredSegment, ...]] = field(default_factory=dict)
    known: bool = False  # the catalog had this path (an update, not an addition)

    @property
    def to_decode(self) -> tuple[Modality, ...]:
        return tuple(t for t in self.targets if t not in self.reused)


@dataclass
class Plan:
    units: list[Unit] = field(default_factory=list)
    failures: list[FailedFile] = field(default_factory=list)
    unchanged: int = 0
    seen: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PlanOptions:
    forced: Modality | None = None
    retry_failed: bool = False


def make_plan(
    found: Iterable[FoundFile],
    library: Library,
    encoders: Embedder,
    config: Config,
    options: PlanOptions,
) -> Plan:
    plan = Plan()
    for chunk in _chunks(found, _LOOKUP_CHUNK):
        records = library.catalog.files_by_paths([str(f.path) for f in chunk])
        for item in chunk:
            plan.seen.add(str(item.path))
            _plan_one(item, records.get(str(item.path)), library, encoders, config, options, plan)
    return plan


def _plan_one(
    item: FoundFile,
    record: FileRecord | None,
    library: Library,
    encoders: Embedder,
    config: Config,
    options: PlanOptions,
    plan: Plan,
) -> None:
    same = record is not None and (record.size, record.mtime_ns) == (item.size, item.mtime_ns)
    if same and record is not None and _settled(record, options):
        plan.unchanged += 1
        return
    try:
        if same and record is not None and record.status is FileStatus.STALE:
            assert record.modality is not None and record.content_hash is not None
            modality, content_hash = record.modality, record.content_hash
        else:
            modality = classify(item.path, config.classify, root=item.root, forced=options.forced)
            content_hash = _hash(item.path)
    except MediaError as error:
        if not (error.reason == "unsupported_type" and "." not in item.path.name):
            plan.failures.append(_failed(item, error.reason, error.detail))
        return
    unit = Unit(item, modality, content_hash, _targets(modality, config), known=record is not None)
    for target in unit.targets:
        stored = library.catalog.segments_for_hash(content_hash, target, encoders.model_id(target))
        if stored is not None:
            unit.reused[target] = stored
    plan.units.append(unit)


def _settled(record: FileRecord, options: PlanOptions) -> bool:
    if record.status is FileStatus.INDEXED:
        return options.forced is None or record.modality is options.forced
    return record.status is FileStatus.FAILED and not options.retry_failed


def _targets(modality: Modality, config: Config) -> tuple[Modality, ...]:
    if modality is Modality.VIDEO and config.video.index_audio_track:
        return (Modality.VIDEO, Modality.AUDIO)
    return (modality,)


def _hash(path: Path) -> str:
    from lbsearch.media.reasons import media_error

    try:
        return hash_file(path)
    except FileNotFoundError as exc:
        raise media_error(path, "vanished", "the file disappeared before it was read") from exc
    except OSError as exc:
        raise media_error(path, "unreadable", f"cannot read: {exc.strerror or exc}") from exc


def _failed(item: FoundFile, reason: str, detail: str) -> FailedFile:
    return FailedFile(str(item.path), str(item.root), item.size, item.mtime_ns, reason, detail)


def _chunks(items: Iterable[FoundFile], size: int) -> Iterator[list[FoundFile]]:
    chunk: list[FoundFile] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
