"""Embedding without waiting for the device: the assembler submits a batch and places its vectors
later, and a run gives the same library as one that waits for every batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from lbsearch.catalog import FailedFile, IndexedFile
from lbsearch.config import Config
from lbsearch.embedder.protocol import StreamingEmbedder
from lbsearch.errors import MediaError
from lbsearch.indexers.assemble import Assembler
from lbsearch.indexers.pipeline import run_index
from lbsearch.indexers.plan import Unit
from lbsearch.indexers.progress import Event, FileDone
from lbsearch.indexers.walk import FoundFile
from lbsearch.library import Library
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media
from lbsearch.types import Modality, Segment

CONFIG = Config()


class _Deferred:
    """A batch's vectors, ready once released (or after `polls` looks at it)."""

    def __init__(self, vectors: np.ndarray, owner: DeferredEncoders, polls: int | None) -> None:
        self.vectors, self.owner, self.polls = vectors, owner, polls
        self.released = False

    def ready(self) -> bool:
        if self.polls is not None:
            self.released = self.released or self.polls <= 0
            self.polls -= 1
        return self.released

    def result(self) -> np.ndarray:
        if not self.released:
            self.owner.waits += 1  # the caller blocked on the device
            self.released = True
        self.owner.placed += 1
        return self.vectors


class DeferredEncoders(FakeEncoders):
    """The fake encoder as a GPU would serve it: `submit_segments` returns before the vectors."""

    def __init__(self, polls: int | None = None) -> None:
        super().__init__()
        self.polls = polls
        self.jobs: list[_Deferred] = []
        self.waits = self.placed = 0

    def submit_segments(self, modality: Modality, segments: Sequence[Segment]) -> _Deferred:
        self.jobs.append(_Deferred(self.embed_segments(modality, segments), self, self.polls))
        return self.jobs[-1]

    @property
    def unplaced(self) -> int:
        return len(self.jobs) - self.placed


def _unit(name: str, modality: Modality = Modality.AUDIO) -> Unit:
    found = FoundFile(Path("/media") / name, Path("/media"), 1, 1)
    return Unit(found, modality, f"hash-{name}", (modality,))


def _segments(name: str, count: int) -> list[Segment]:
    pixels = torch.arange(count * 8, dtype=torch.float32).reshape(count, 8) + sum(map(ord, name))
    return [Segment(name, Modality.AUDIO, 10.0 * i, 10.0 * i + 10, p) for i, p in enumerate(pixels)]


def _assembler(encoders: FakeEncoders, events: list[Event]) -> Assembler:
    return Assembler(encoders, batch_size=2, progress=events.append)


def test_the_deferred_fake_is_seen_as_streaming() -> None:
    assert isinstance(DeferredEncoders(), StreamingEmbedder)
    assert not isinstance(FakeEncoders(), StreamingEmbedder)


def test_a_submitted_batch_is_not_waited_for_and_its_file_waits_for_it() -> None:
    encoders, events = DeferredEncoders(), []
    assembler = _assembler(encoders, events)
    index, _ = assembler.add_unit(_unit("a.wav"))
    assembler.add_part(index, Modality.AUDIO, _segments("a.wav", 2))  # a full batch: submitted
    assembler.end_target(index, Modality.AUDIO, None)
    assert len(encoders.jobs) == 1 and encoders.placed == 0
    assembler.collect()  # the device is not done: nothing waits, nothing completes
    assert encoders.placed == 0 and assembler.take_ready() == []
    encoders.jobs[0].released = True
    assembler.collect()
    (done,) = assembler.take_ready()
    assert isinstance(done.row, IndexedFile) and encoders.waits == 0
    expected = FakeEncoders().embed_segments(Modality.AUDIO, _segments("a.wav", 2))
    np.testing.assert_array_equal(np.stack([s.vector for s in done.row.segments]), expected)
    assert next(e for e in events if isinstance(e, FileDone)).segments == 2


def test_at_most_one_submit_stays_in_flight() -> None:
    encoders, events = DeferredEncoders(), []
    assembler = _assembler(encoders, events)
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        index, _ = assembler.add_unit(_unit(name))
        assembler.add_part(index, Modality.AUDIO, _segments(name, 2))
        assembler.end_target(index, Modality.AUDIO, None)
        assert encoders.unplaced <= 1  # the previous batch is placed when this one is submitted
    assert encoders.waits == 3 and len(assembler.take_ready()) == 3
    assembler.encode_all()
    assert encoders.unplaced == 0 and len(assembler.take_ready()) == 1


def test_a_target_failing_while_its_vectors_are_in_flight_drops_only_its_own() -> None:
    encoders, events = DeferredEncoders(), []
    assembler = _assembler(encoders, events)
    a, _ = assembler.add_unit(_unit("a.wav"))
    b, _ = assembler.add_unit(_unit("b.wav"))
    assembler.add_part(a, Modality.AUDIO, _segments("a.wav", 1))
    assembler.add_part(b, Modality.AUDIO, _segments("b.wav", 1))  # batch [a0, b0] in flight
    error = MediaError("/media/a.wav", "truncated", "the stream ends early")
    assembler.end_target(a, Modality.AUDIO, error)  # a's later part failed to decode
    assembler.end_target(b, Modality.AUDIO, None)
    (failed,) = assembler.take_ready()  # a fails at once: its vectors are no longer awaited
    assert isinstance(failed.row, FailedFile) and failed.row.reason == "truncated"
    assembler.encode_all()
    (kept,) = assembler.take_ready()
    assert isinstance(kept.row, IndexedFile) and kept.row.path == "/media/b.wav"
    expected = FakeEncoders().embed_segments(Modality.AUDIO, _segments("b.wav", 1))
    np.testing.assert_array_equal(kept.row.segments[0].vector, expected[0])


def test_a_sound_track_failing_in_flight_leaves_the_video_without_it() -> None:
    encoders, events = DeferredEncoders(), []
    assembler = _assembler(encoders, events)
    found = FoundFile(Path("/media/clip.mp4"), Path("/media"), 1, 1)
    video, _ = assembler.add_unit(
        Unit(found, Modality.VIDEO, "hash-clip", (Modality.VIDEO, Modality.AUDIO))
    )
    assembler.add_part(video, Modality.AUDIO, _segments("clip.mp4", 2))  # in flight
    error = MediaError("/media/clip.mp4", "decode_error", "the sound track is corrupt")
    assembler.end_target(video, Modality.AUDIO, error)
    pictures = [
        Segment("clip.mp4", Modality.VIDEO, s.start_s, s.end_s, s.pixels)
        for s in _segments("clip.mp4", 2)
    ]
    assembler.add_part(video, Modality.VIDEO, pictures)  # the sound track's batch is placed
    assembler.end_target(video, Modality.VIDEO, None)
    assembler.encode_all()
    (done,) = assembler.take_ready()
    assert isinstance(done.row, IndexedFile)
    assert [s.modality for s in done.row.segments] == [Modality.VIDEO, Modality.VIDEO]


def _vectors_by_path(library: Path) -> dict[str, list[tuple[float, ...]]]:
    found: dict[str, list[tuple[float, ...]]] = {}
    with Library.open(library, config=CONFIG) as lib:
        for modality in Modality:
            for chunk in lib.catalog.stream_vectors(modality):
                files = lib.catalog.segment_files(chunk.ids)
                where = dict(zip(files.ids.tolist(), files.paths, strict=True))
                for segment_id, vector in zip(chunk.ids.tolist(), chunk.vectors, strict=True):
                    key = f"{modality.value}:{where[segment_id]}"
                    found.setdefault(key, []).append(tuple(np.round(vector, 6)))
    return {key: sorted(rows) for key, rows in found.items()}


# vectors ready at the first look, after three looks (the default run), or only when waited for
@pytest.mark.parametrize(
    "polls",
    [pytest.param(0, marks=pytest.mark.slow), 3, pytest.param(None, marks=pytest.mark.slow)],
)
def test_a_run_on_a_streaming_embedder_gives_the_same_library(tmp_path: Path, polls: int) -> None:
    media = tmp_path / "media"
    write_sample_media(media)
    waiting, streaming = FakeEncoders(), DeferredEncoders(polls)
    for name, encoders in (("waiting", waiting), ("streaming", streaming)):
        with Library.open(tmp_path / name, config=CONFIG, write=True) as lib:
            done = run_index([media], lib, encoders, CONFIG)
        assert done.counts.added == 7 and done.counts.failed == 0
    assert streaming.jobs and streaming.unplaced == 0
    assert _vectors_by_path(tmp_path / "streaming") == _vectors_by_path(tmp_path / "waiting")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_in_flight_give_the_cpu_vectors(tiny_config: Path) -> None:
    from lbsearch.config import load_config
    from lbsearch.embedder import open_embedder

    config = load_config(tiny_config)
    on_gpu = open_embedder(config, backend="torch", device="cuda", dtype="float32")
    on_cpu = open_embedder(config, backend="torch", device="cpu", dtype="float32")
    shape = on_cpu.checkpoint(Modality.IMAGE).spec.input_shape
    pixels = torch.randn(3, 5, *shape, generator=torch.Generator().manual_seed(0))
    batches = [[Segment("x", Modality.IMAGE, 0.0, 0.0, p) for p in batch] for batch in pixels]
    in_flight = [on_gpu.submit_segments(Modality.IMAGE, batch) for batch in batches]
    for batch, vectors in zip(batches, in_flight, strict=True):
        expected = on_cpu.embed_segments(Modality.IMAGE, batch)
        assert (vectors.result() * expected).sum(axis=1).min() > 0.9999


class _CountingTower:
    """A tower whose batches stay in flight until waited for, counting how many at once."""

    dim, batch_size = 4, 2

    def __init__(self) -> None:
        self.unplaced = self.most = 0

    def submit(self, segments: Sequence[Segment]) -> _Counted:
        self.unplaced += 1
        self.most = max(self.most, self.unplaced)
        rows = np.stack([s.pixels[:4].numpy() for s in segments])
        return _Counted(self, rows / np.linalg.norm(rows, axis=1, keepdims=True))


class _Counted:
    def __init__(self, tower: _CountingTower, rows: np.ndarray) -> None:
        self.tower, self.rows = tower, rows

    def ready(self) -> bool:
        return False

    def result(self) -> np.ndarray:
        self.tower.unplaced -= 1
        return self.rows


def test_embedding_many_segments_holds_two_batches_at_most() -> None:
    from lbsearch.embedder import EmbedderOptions, LanguageBindEmbedder

    embedder = LanguageBindEmbedder(CONFIG, EmbedderOptions())
    tower = _CountingTower()
    embedder._media[Modality.AUDIO] = tower  # type: ignore[assignment]
    segments = _segments("long.wav", 11)  # six batches of two
    vectors = embedder.embed_segments(Modality.AUDIO, segments)
    assert tower.most == 2 and tower.unplaced == 0
    expected = np.stack([s.pixels[:4].numpy() for s in segments])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
