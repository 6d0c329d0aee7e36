"""`--match both` is exact: the best `both` file is found even when it ranks far down each
stream on its own (the threshold algorithm in SearchEngine._both / streams.both_settled).

Planted library: two videos whose 40 windows all show the query's picture but sound unrelated,
two whose 40 windows all sound right but look unrelated, and one whose single window is middling
in both. Each stream's top 80 segments belong to the one-stream videos, so taking a fixed number
of candidate files per stream (the old 2 x limit) never sees the middling video: the best `both`
file of all."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import IndexedFile, NewSegment
from lbsearch.config import Config
from lbsearch.library import Library
from lbsearch.search import QueryRequest, SearchEngine, parse_query
from lbsearch.search.calibration import captions, install_banks
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.types import Modality, Segment

DIM = 6
VID, AUD = Modality.VIDEO, Modality.AUDIO
E = np.eye(DIM, dtype=np.float32)
WINDOWS = 40


def unit(*parts: float) -> np.ndarray:
    v = np.array(parts, dtype=np.float32)
    return v / np.linalg.norm(v)


class StreamEmbedder(FakeEncoders):
    """A text is the picture axis x0 for the video tower and the sound axis x1 for the audio
    tower (whatever it says); the reference bank spreads over the other axes."""

    def __init__(self) -> None:
        super().__init__(dim=DIM)

    def embed_texts(self, modality: Modality, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == len(captions()):
            rng = np.random.default_rng(3)
            bank = rng.standard_normal((len(texts), DIM)).astype(np.float32)
            return bank / np.linalg.norm(bank, axis=1, keepdims=True)
        return np.stack([E[0] if modality is VID else E[1] for _ in texts])

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        raise AssertionError("no file is decoded here")


def video(path: str, picture: list[np.ndarray], sound: list[np.ndarray]) -> IndexedFile:
    segments = [
        NewSegment(VID, 10.0 * i, 10.0 * i + 10, "stub/video", v) for i, v in enumerate(picture)
    ]
    segments += [
        NewSegment(AUD, 10.0 * i, 10.0 * i + 10, "stub/audio", v) for i, v in enumerate(sound)
    ]
    return IndexedFile(
        path=path,
        root="/m",
        size=1000,
        mtime_ns=1,
        content_hash=f"h-{path}",
        modality=VID,
        segments=tuple(segments),
        duration_s=10.0 * len(picture),
    )


def one_stream(path: str, seen: bool, seed: int) -> IndexedFile:
    """40 windows that match the query in one stream (~0.99) and not in the other (~0.1)."""
    rng = np.random.default_rng(seed)
    good = [unit(1, 0, *(0.1 + 0.02 * rng.random(4))) for _ in range(WINDOWS)]
    bad = [unit(0.1, 0.1, 1, *(0.5 * rng.random(3))) for _ in range(WINDOWS)]
    matched = [np.roll(v, 0 if seen else 1) for v in good]  # x0: picture axis, x1: sound axis
    other = bad
    return video(path, matched, other) if seen else video(path, other, matched)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exact")
    files = [
        one_stream("/m/seen1.mp4", True, 1),
        one_stream("/m/seen2.mp4", True, 2),
        one_stream("/m/heard1.mp4", False, 3),
        one_stream("/m/heard2.mp4", False, 4),
        video("/m/middle.mp4", [unit(0.7, 0, 0.7, 0.1, 0, 0)], [unit(0, 0.7, 0.7, 0, 0.1, 0)]),
    ]
    with Library.open(root, write=True) as lib:
        lib.set_modality(VID, "stub/video", "1", DIM)
        lib.set_modality(AUD, "stub/audio", "1", DIM)
        lib.write_batch(files)
        install_banks(lib, StreamEmbedder(), Config().relevance)  # type: ignore[arg-type]
    return root


def search(library: Path, **fields: object) -> list[str]:
    request = QueryRequest(texts=("anything",), match="both", all=True, **fields)  # type: ignore[arg-type]
    with Library.open(library) as lib:
        hits = SearchEngine(lib, Config(), StreamEmbedder()).search(parse_query(request))  # type: ignore[arg-type]
    return [Path(h.path).name for h in hits]


@pytest.mark.parametrize("order", ["score", "relevance"])
def test_the_best_both_file_is_found_far_down_each_stream(library: Path, order: str) -> None:
    assert search(library, limit=1, order=order) == ["middle.mp4"]
    ranked = search(library, limit=5, order=order)
    assert ranked[0] == "middle.mp4" and sorted(ranked) == sorted(
        ["middle.mp4", "seen1.mp4", "seen2.mp4", "heard1.mp4", "heard2.mp4"]
    )
