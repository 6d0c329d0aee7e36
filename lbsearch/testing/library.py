"""Test factories for libraries: indexed-file records with random unit vectors, and the one
consistency check every library test uses (catalog sound, indices equal to the catalog)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..catalog import IndexedFile, NewSegment
from ..config import Config
from ..library import IndexAction, Library
from ..types import Modality


def unit_vectors(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """`count` random L2-normalised float32 rows (uniform on the sphere; see `.vectors` for
    vectors clustered like real embeddings)."""
    rows = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def indexed_file(
    path: str,
    vectors: np.ndarray | Sequence[np.ndarray],
    *,
    modality: Modality = Modality.IMAGE,
    model_id: str = "m",
    root: str | None = None,
    size: int = 10,
    mtime_ns: int = 1,
    content_hash: str | None = None,
    window_s: float = 0.0,
) -> IndexedFile:
    """A file with one segment per vector, windows of `window_s` seconds laid end to end (0: a
    picture's single instant). The content hash defaults to one derived from the path."""
    segments = tuple(
        NewSegment(modality, i * window_s, (i + 1) * window_s, model_id, np.asarray(v))
        for i, v in enumerate(vectors)
    )
    return IndexedFile(
        path,
        root if root is not None else str(Path(path).parent),
        size,
        mtime_ns,
        content_hash or f"hash-of-{path}",
        modality,
        segments,
    )


def image_files(
    start: int,
    count: int,
    *,
    dim: int = 16,
    model_id: str = "m",
    folder: str = "/media",
) -> list[IndexedFile]:
    """Pictures `{folder}/{n}.jpg` for n in start..start+count, one random vector each (seeded by
    `start`, so the same call gives the same vectors)."""
    vectors = unit_vectors(count, dim, seed=start)
    return [
        indexed_file(
            f"{folder}/{start + i}.jpg",
            vectors[i : i + 1],
            model_id=model_id,
            root=folder,
            mtime_ns=start + i,
            content_hash=f"h{start + i}",
        )
        for i in range(count)
    ]


def picture_library(root: Path, count: int, config: Config | None = None) -> Path:
    """A library at `root` of `count` pictures (`image_files`, 16-d, model "m"); returns `root`."""
    with Library.open(root, config=config or Config(), write=True) as lib:
        lib.set_modality(Modality.IMAGE, "m", "1", 16)
        lib.write_batch(image_files(0, count))
    return root


def assert_library_consistent(
    root: Path, config: Config | None = None, *, saved: bool = False
) -> dict[Modality, int]:
    """Assert that the library at `root` is sound; returns the segment count per modality.

    Always: SQLite's integrity and foreign-key checks pass, no path is catalogued twice, and
    every modality's index (as a reader loads it) holds exactly the catalog's segment ids, each
    once. With `saved`, also: every index file on disk is up to date, so a reader loads each one
    as it is, without repairing.
    """
    with Library.open(root, config=config or Config()) as library:
        catalog = library.catalog
        assert catalog.integrity_check() == [], catalog.integrity_check()
        paths = [record.path for record in catalog.iter_files()]
        assert len(paths) == len(set(paths)), "a path is catalogued twice"
        counts = {}
        for check in library.check():
            assert check.consistent, check
            counts[check.modality] = check.catalog_count
        if saved:
            for info in library.index_info():
                assert info.up_to_date, info
            for modality, event in library.index_events.items():
                assert event.action is IndexAction.FRESH, (modality, str(event))
    return counts
