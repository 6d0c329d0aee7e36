"""Survey and probe: decide, for every file found, what the run must do with it.

`survey` (main thread, no file is opened) settles unchanged files (same size and mtime as
recorded) from the catalog and lists the others as candidates. A `Prober` then reads the
candidates on a background thread, in walk order: classification (a 512-byte read) and the content
hash, so hashing overlaps decoding instead of delaying it. Which stored vectors a probed file can
reuse is decided on the main thread (`Unit.reused`), where the catalog is written.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lbsearch.catalog import (
    FailedFile,
    FileRecord,
    FileStatus,
    StoredSegment,
    hash_file,
)
from lbsearch.config import Config
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


@dataclass(frozen=True)
class Candidate:
    """A file the catalog cannot settle without reading it (new, changed, or to retry)."""

    found: FoundFile
    record: FileRecord | None


@dataclass
class Survey:
    candidates: list[Candidate] = field(default_factory=list)
    unchanged: int = 0
    seen: set[str] = field(default_factory=set)

    @property
    def candidate_bytes(self) -> int:
        return sum(c.found.size for c in self.candidates)


@dataclass(frozen=True)
class PlanOptions:
    forced: Modality | None = None
    retry_failed: bool = False


@dataclass(frozen=True)
class Probed:
    """What reading a candidate found: a unit to index, a failure to record, or neither (a name
    without extension that is not media, skipped silently)."""

    candidate: Candidate
    outcome: Unit | FailedFile | None
    bytes_read: int


def survey(
    found: Iterable[FoundFile],
    library: Library,
    options: PlanOptions,
    reembed: Collection[str] = (),
) -> Survey:
    """Split the walk into unchanged files (counted) and candidates, from the catalog alone.
    `reembed`: paths whose vectors a `--reembed` still has to replace (candidates even when
    unchanged; their hash is not read again)."""
    result = Survey()
    for chunk in _chunks(found, _LOOKUP_CHUNK):
        records = library.files_by_paths([str(f.path) for f in chunk])
        for item in chunk:
            result.seen.add(str(item.path))
            record = records.get(str(item.path))
            settled = record is not None and _settled(record, options)
            if _same(item, record) and settled and str(item.path) not in reembed:
                result.unchanged += 1
            else:
                result.candidates.append(Candidate(item, record))
    return result


def probe(candidate: Candidate, config: Config, options: PlanOptions) -> Probed:
    """Classify and hash one candidate (an indexed or stale file that is unchanged, re-embedded
    or forced to another modality, is not read: its recorded hash and modality hold)."""
    item, record = candidate.found, candidate.record
    read = 0
    try:
        if _same(item, record) and record is not None and _known(record, options):
            assert record.modality is not None and record.content_hash is not None
            modality, content_hash = record.modality, record.content_hash
        else:
            modality = classify(item.path, config.classify, root=item.root, forced=options.forced)
            content_hash, read = _hash(item.path), item.size
    except MediaError as error:
        if error.reason == "unsupported_type" and "." not in item.path.name:
            return Probed(candidate, None, read)
        return Probed(candidate, _failed(item, error.reason, error.detail), read)
    targets = _targets(modality, config)
    unit = Unit(item, modality, content_hash, targets, known=record is not None)
    return Probed(candidate, unit, read)


class Prober:
    """Probes candidates in order on a daemon thread; the main thread takes the results."""

    def __init__(self, candidates: list[Candidate], config: Config, options: PlanOptions) -> None:
        self.remaining = len(candidates)
        self._results: queue.Queue[Probed | BaseException] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(candidates, config, options), daemon=True, name="lbsearch-hash"
        )
        self._thread.start()

    @property
    def finished(self) -> bool:
        """Every candidate's result has been taken."""
        return self.remaining == 0

    def take(self, timeout: float) -> list[Probed]:
        """The results ready now, waiting up to `timeout` seconds for the first one."""
        taken: list[Probed] = []
        block = not self.finished
        while self.remaining:
            try:
                item = self._results.get(block=block, timeout=timeout if block else None)
            except queue.Empty:
                break
            block = False
            if isinstance(item, BaseException):
                raise item
            taken.append(item)
            self.remaining -= 1
        return taken

    def stop(self) -> None:
        """Stop after the file being read (the thread is a daemon: nothing waits for it)."""
        self._stop.set()

    def _run(self, candidates: list[Candidate], config: Config, options: PlanOptions) -> None:
        try:
            for candidate in candidates:
                if self._stop.is_set():
                    return
                self._results.put(probe(candidate, config, options))
        except BaseException as exc:  # a bug: hand it to the main thread rather than hang it
            self._results.put(exc)


def _same(item: FoundFile, record: FileRecord | None) -> bool:
    """Unchanged: size, mtime, ctime, device and inode as recorded. A changed ctime alone (a
    chmod, a replacement dated back with `touch -r`) makes the file a candidate: it is hashed,
    and the same content keeps its vectors."""
    return record is not None and record.identity == item.identity


def _known(record: FileRecord, options: PlanOptions) -> bool:
    """The record's hash and modality hold for an unchanged file (unless --as changes it)."""
    if record.status not in (FileStatus.STALE, FileStatus.INDEXED):
        return False
    return options.forced is None or options.forced is record.modality


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
    return FailedFile(
        str(item.path),
        str(item.root),
        item.size,
        item.mtime_ns,
        reason,
        detail,
        ctime_ns=item.ctime_ns,
        dev=item.dev,
        ino=item.ino,
    )


def _chunks(items: Iterable[FoundFile], size: int) -> Iterator[list[FoundFile]]:
    chunk: list[FoundFile] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
