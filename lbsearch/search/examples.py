"""Example files (search by example): the vector of a file the query names.

A file the library holds unchanged gives the mean of its stored vectors (no tower loads);
any other file is classified, decoded through lbsearch.media (in a helper thread with the
configured time limit, lbsearch.media.timed) and embedded with its modality's tower, its segments averaged.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..catalog.records import FileRecord, FileStatus
from ..config import Config
from ..errors import UsageError
from ..types import Modality

if TYPE_CHECKING:
    from ..embedder import Embedder
    from ..library import Library


def example_vector(
    library: Library, embedder: Embedder, config: Config, given: Path | str
) -> tuple[Modality, np.ndarray]:
    """The example's modality and unit vector: stored if the library holds it unchanged."""
    path = absolute(given)
    stored = stored_vector(library, path)
    if stored is not None:
        return stored
    check_example(path, given)
    from ..media import classify
    from ..media.timed import decode_in_time

    modality = classify(path, config.classify)
    segments = decode_in_time(path, embedder.media_spec(modality), config)
    vectors = embedder.embed_segments(modality, segments)
    return modality, unit(np.mean(np.asarray(vectors, dtype=np.float64), axis=0))


def absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))  # noqa: PTH100 - keep links as given


def stored_vector(library: Library, path: Path) -> tuple[Modality, np.ndarray] | None:
    record = library.file_by_path(str(path))
    if record is None or not _reusable(record, path):
        return None
    stored = library.stored_vectors(record)
    if stored is None or not len(stored):
        return None
    assert record.modality is not None
    return record.modality, unit(np.mean(stored, axis=0))


def check_example(path: Path, given: Path | str) -> None:
    """UsageError unless `path` names a regular file (checked with stat: nothing is opened)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{given}: no such file", "check the example's path") from None
    except OSError as exc:
        raise UsageError(f"{given}: cannot be read ({exc.strerror})", "check the path") from None
    if stat.S_ISDIR(mode):
        raise UsageError(
            f"{given} is a folder; an example is one file",
            f"give a file in it, or search only that folder with --path '{given}/*' "
            "(path: in a query box)",
        )
    if not stat.S_ISREG(mode):
        raise UsageError(
            f"{given} is not a regular file (a FIFO, socket or device)",
            "an example must be an image, video, audio file or depth map",
        )


def unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return (vector / (np.linalg.norm(vector) or 1.0)).astype(np.float32)


def _reusable(record: FileRecord, path: Path) -> bool:
    if record.status is not FileStatus.INDEXED or not (record.modality and record.content_hash):
        return False
    try:
        return record.unchanged(path.stat())
    except FileNotFoundError:
        return True  # gone since indexing: what the library holds is all there is
    except OSError:
        return False


def excluded_paths(examples: tuple[Path, ...]) -> frozenset[str]:
    """Each example file as given (absolute) and with its links resolved: never a hit."""
    paths: set[str] = set()
    for example in examples:
        given = str(absolute(example))
        paths |= {given, os.path.realpath(given)}
    return frozenset(paths)


def is_excluded(path: str, excluded: frozenset[str]) -> bool:
    return bool(excluded) and (path in excluded or os.path.realpath(path) in excluded)


def sound_track_vector(
    library: Library, embedder: Embedder, config: Config, given: Path | str
) -> np.ndarray | None:
    """A video example's sound-track vector (the mean of its sound windows: stored if the
    library holds the video unchanged, else decoded), for searching sound windows; None for
    any other example, or a video without sound."""
    from ..errors import MediaError

    path = absolute(given)
    record = library.file_by_path(str(path))
    states = library.modality_states()
    if record is not None and _reusable(record, path):
        if record.modality is not Modality.VIDEO or Modality.AUDIO not in states:
            return None
        assert record.content_hash is not None
        stored = library.segments_for_hash(
            record.content_hash, Modality.AUDIO, states[Modality.AUDIO].model_id
        )
        return unit(np.mean([s.vector for s in stored], axis=0)) if stored else None
    from ..media import classify
    from ..media.timed import decode_in_time

    try:
        if classify(path, config.classify) is not Modality.VIDEO:
            return None
        segments = decode_in_time(path, embedder.media_spec(Modality.AUDIO), config)
    except MediaError:
        return None  # a silent video: its picture vector searches the sound windows too
    if not segments:
        return None
    vectors = embedder.embed_segments(Modality.AUDIO, segments)
    return unit(np.mean(np.asarray(vectors, dtype=np.float64), axis=0))
