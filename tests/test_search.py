"""The query engine's arithmetic on a library with hand-made vectors: weights, negatives, roll-up,
merging, over-fetching, filters; and its small parsers."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lbsearch.catalog import IndexedFile, NewSegment
from lbsearch.config import Config
from lbsearch.errors import UsageError
from lbsearch.library import Library
from lbsearch.search import (
    Query,
    SearchEngine,
    Term,
    normalise_glob,
    parse_after,
    parse_before,
    parse_weighted,
)
from lbsearch.search.calibration import captions
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.types import Modality, Segment

DIM = 4
IMG, VID, AUD = Modality.IMAGE, Modality.VIDEO, Modality.AUDIO
E = np.eye(DIM, dtype=np.float32)
DAY = 86400.0
T2024 = datetime(2024, 5, 1, 12).timestamp()


def unit(*parts: float) -> np.ndarray:
    v = np.array(parts, dtype=np.float32)
    return v / np.linalg.norm(v)


class StubEmbedder(FakeEncoders):
    """Texts are named basis vectors: "x0".."x3"; every picture embeds as `picture`."""

    def __init__(self, picture: np.ndarray = E[1]) -> None:
        super().__init__(dim=DIM)
        self.picture = picture
        self.asked: list[Modality] = []

    def embed_texts(self, modality: Modality, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == len(captions()):  # the reference bank: spread evenly, no favourite
            return np.tile(np.vstack([E, -E]), (len(texts) // (2 * DIM) + 1, 1))[: len(texts)]
        self.asked.append(modality)
        return np.stack([E[int(t[1:])] for t in texts])

    def embed_segments(self, modality: Modality, segments: Sequence[Segment]) -> np.ndarray:
        return np.stack([self.picture for _ in segments])


def _file(
    path: str,
    modality: Modality,
    segments: list[tuple[Modality, float, float, np.ndarray]],
    *,
    mtime: float = T2024,
    duration: float | None = None,
) -> IndexedFile:
    return IndexedFile(
        path=path,
        root="/m",
        size=1000,
        mtime_ns=int(mtime * 1e9),
        content_hash=f"h-{path}",
        modality=modality,
        segments=tuple(NewSegment(m, s, e, f"stub/{m.value}", v) for m, s, e, v in segments),
        duration_s=duration,
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lib")
    files = [
        _file("/m/a.jpg", IMG, [(IMG, 0, 0, E[0])]),
        _file("/m/b.jpg", IMG, [(IMG, 0, 0, unit(1, 1, 0, 0))], mtime=T2024 - 400 * DAY),
        _file("/m/photos/c.png", IMG, [(IMG, 0, 0, unit(0, 1, 0, 0))]),
        _file(
            "/m/song.wav",
            AUD,
            [(AUD, 0, 10, E[2]), (AUD, 10, 20, unit(3, 0, 1, 0)), (AUD, 20, 25, E[3])],
            duration=25.0,
        ),
        _file(  # frames point along x1, the sound track along x0
            "/m/clip.mp4",
            VID,
            [(VID, 0, 10, E[1]), (AUD, 0, 10, unit(2, 0, 0, 1)), (AUD, 10, 12, E[3])],
            duration=12.0,
        ),
    ]
    # many segments of one long recording close to x3: over-fetching must look past them
    long_one = [(AUD, 5.0 * i, 5.0 * i + 5, unit(0.001 * i, 0, 0, 1)) for i in range(150)]
    files.append(_file("/m/long.flac", AUD, long_one, duration=750.0))
    files.append(_file("/m/short.wav", AUD, [(AUD, 0, 3, unit(0, 0, 0.3, 1))], duration=3.0))
    with Library.open(root, write=True) as lib:
        for modality in (IMG, VID, AUD):
            lib.set_modality(modality, f"stub/{modality.value}", "1", DIM)
        lib.write_batch(files)
    return root


@pytest.fixture
def engine(library: Path) -> Iterator[SearchEngine]:
    with Library.open(library) as lib:
        yield SearchEngine(lib, Config(), StubEmbedder(E[1]))


def _scores(hits: list) -> dict[str, float]:  # type: ignore[type-arg]
    return {Path(h.path).name: round(h.score, 4) for h in hits}


def test_text_query_searches_every_indexed_modality_and_rolls_up(engine: SearchEngine) -> None:
    hits = engine.search(Query((Term("x0"),), limit=50, order="score"))  # raw cosine
    assert set(engine.embedder.asked) == {IMG, VID, AUD}  # type: ignore[attr-defined]
    assert engine.indexed_modalities() == (IMG, VID, AUD)
    names = [Path(h.path).name for h in hits]
    assert len(names) == len(set(names)) == 7, "one row per file"
    assert names[0] == "a.jpg" and hits[0].score == pytest.approx(1.0)
    song = next(h for h in hits if h.path.endswith("song.wav"))
    assert (song.start_s, song.end_s, song.modality) == (10, 20, AUD)  # the best segment's span
    assert song.score == pytest.approx(3 / math.sqrt(10), abs=1e-5)
    assert song.duration_s == 25.0 and song.size == 1000 and song.mtime == pytest.approx(T2024)


def test_a_video_keeps_its_best_hit_over_frames_and_sound_track(engine: SearchEngine) -> None:
    by_sound = engine.search(Query((Term("x0"),), limit=50))
    clip = next(h for h in by_sound if h.path.endswith("clip.mp4"))
    assert clip.modality is AUD and clip.score == pytest.approx(2 / math.sqrt(5), abs=1e-5)
    by_frames = engine.search(Query((Term("x1"),), limit=50))
    clip = next(h for h in by_frames if h.path.endswith("clip.mp4"))
    assert clip.modality is VID and clip.score == pytest.approx(1.0)


def test_weights_and_negatives_combine_as_a_normalised_sum(engine: SearchEngine) -> None:
    plain = _scores(engine.search(Query((Term("x0"),), modalities=(IMG,))))
    assert plain == {"a.jpg": 1.0, "b.jpg": 0.7071, "c.png": 0.0}
    negative = engine.search(Query((Term("x0"), Term("x1", weight=-1)), modalities=(IMG,)))
    assert [Path(h.path).name for h in negative] == ["a.jpg", "b.jpg", "c.png"]
    assert _scores(negative) == {"a.jpg": 0.7071, "b.jpg": 0.0, "c.png": -0.7071}
    weighted = _scores(engine.search(Query((Term("x0"), Term("x1", weight=3)), modalities=(IMG,))))
    assert weighted["c.png"] > weighted["b.jpg"] > weighted["a.jpg"]  # x1 now dominates
    assert weighted["c.png"] == pytest.approx(3 / math.sqrt(10), abs=1e-4)


def test_example_files_mix_with_text_and_are_never_returned(
    engine: SearchEngine, tmp_path: Path
) -> None:
    Image.new("RGB", (40, 30), "red").save(tmp_path / "example.jpg")
    mixed = _scores(engine.search(Query((Term("x0"), Term(file=tmp_path / "example.jpg")))))
    assert mixed["b.jpg"] == pytest.approx(1.0, abs=1e-4)  # (x0 + x1)/sqrt2
    alike = engine.similar("/m/a.jpg", modalities=(IMG,))  # indexed: its stored vector, excluded
    assert [Path(h.path).name for h in alike] == ["b.jpg", "c.png"]


def test_over_fetching_fills_the_limit_past_one_files_many_segments(engine: SearchEngine) -> None:
    hits = engine.search(Query((Term("x3"),), modalities=(AUD,), limit=4, order="score"))
    names = [Path(h.path).name for h in hits]
    assert set(names[:3]) == {"long.flac", "song.wav", "clip.mp4"}  # each has a segment = x3
    assert names[3] == "short.wav"  # below all 150 segments of long.flac: found by asking again
    long_hit = next(h for h in hits if h.path.endswith("long.flac"))
    assert long_hit.start_s == 0 and long_hit.end_s == 5  # segment 0 is exactly x3


def test_a_commit_between_the_count_and_the_search_hides_no_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """k came from a segment count read before the index was loaded: an indexer committing in
    between pushed old files out of the top k (`--limit 1000` gave 42-45 of 47 old files)."""
    from lbsearch.testing.library import image_files

    old = image_files(0, 47, dim=DIM, model_id="stub/image", folder="/old")
    new = [_file(f"/new/{i}.jpg", IMG, [(IMG, 0, 0, unit(1, 0.01 * i, 0, 0))]) for i in range(20)]
    with Library.open(tmp_path, write=True) as lib:
        lib.set_modality(IMG, "stub/image", "1", DIM)
        lib.write_batch(old)
    with Library.open(tmp_path) as reader:
        count = reader.modality_states
        commits = []

        def count_then_commit() -> dict:  # type: ignore[type-arg]
            states = count()
            if not commits:  # another root's files land right after the count
                with Library.open(tmp_path, write=True) as writer:
                    commits.append(writer.write_batch(new))
            return states

        monkeypatch.setattr(reader, "modality_states", count_then_commit)
        engine = SearchEngine(reader, Config(), StubEmbedder())
        hits = engine.search(Query((Term("x0"),), limit=1000))
    assert commits, "the hook did not run: the test no longer interleaves a commit"
    assert {h.path for h in hits} == {f.path for f in old + new}


def test_filters(engine: SearchEngine) -> None:
    def names(**kw: object) -> set[str]:
        return {Path(h.path).name for h in engine.search(Query((Term("x0"),), limit=50, **kw))}  # type: ignore[arg-type]

    assert names(path_globs=("*.jpg",)) == {"a.jpg", "b.jpg"}
    assert names(path_globs=("photos/*",)) == {"c.png"}
    assert names(path_globs=("*.jpg", "*.mp4")) == {"a.jpg", "b.jpg", "clip.mp4"}
    assert "b.jpg" not in names(after=T2024 - DAY)
    assert names(before=T2024 - DAY) == {"b.jpg"}
    assert names(min_duration_s=20.0) == {"song.wav", "long.flac"}  # pictures have no duration
    assert names(max_duration_s=12.0) == {"clip.mp4", "short.wav"}
    assert names(modalities=(VID,)) == {"clip.mp4"}
    assert names(min_score=0.7) == {"a.jpg", "b.jpg", "song.wav", "clip.mp4"}
    assert names(path_globs=("*.nothing",)) == set()


def test_dates_at_the_ends_of_time_match_nothing_or_everything(engine: SearchEngine) -> None:
    everything = len(engine.search(Query((Term("x0"),), limit=50)))
    for after, before, found in [
        ("9999-12-31", None, 0),
        (None, "9999-12-31", everything),
        (None, "0001-01-01", 0),
        ("0001-01-01", None, everything),
    ]:
        window = {"after": parse_after(after) if after else None}
        window["before"] = parse_before(before) if before else None
        hits = engine.search(Query((Term("x0"),), limit=50, **window))
        assert len(hits) == found, (after, before)


def test_limit_and_order(engine: SearchEngine) -> None:
    hits = engine.search(Query((Term("x0"),), limit=3))
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (Query(()), "nothing to search for"),
        (Query((Term("  "),)), "empty text"),
        (Query((Term("x0", weight=0),)), "not usable"),
        (Query((Term("x0", weight=-1),)), "every term is negative"),
        (Query((Term("x0"),), limit=0), "limit"),
        (Query((Term("x0"), Term("x0", weight=-1))), "cancel"),
        (Query((Term(file=Path("/no/such/file.jpg")),)), "no such file"),
    ],
)
def test_unusable_queries_are_usage_errors(
    engine: SearchEngine, query: Query, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        engine.search(query)


def test_an_empty_library_has_nothing_to_search(tmp_path: Path) -> None:
    Library.open(tmp_path / "empty", write=True).close()
    with Library.open(tmp_path / "empty") as lib:
        engine = SearchEngine(lib, Config(), StubEmbedder())
        assert engine.indexed_modalities() == ()
        assert engine.search(Query((Term("x0"),))) == []


def test_dates_are_whole_days_and_date_times_are_exact() -> None:
    assert parse_after("2024-05-01") == datetime(2024, 5, 1).timestamp()
    assert parse_before("2024-05-01") == pytest.approx(datetime(2024, 5, 2).timestamp() - 1e-6)
    assert parse_after("2024-05-01T14:30") == datetime(2024, 5, 1, 14, 30).timestamp()
    assert parse_before("2024-05-01T14:30") == datetime(2024, 5, 1, 14, 30).timestamp()
    assert parse_before("2024-05-01T00:00:00+00:00") == 1714521600.0
    for parse in (parse_after, parse_before):
        with pytest.raises(UsageError, match="not a date") as caught:
            parse("last tuesday")
        assert "2024-05-01" in caught.value.hint


def test_parse_weighted_and_globs() -> None:
    assert parse_weighted("dog") == ("dog", 1.0)
    assert parse_weighted("dog:2") == ("dog", 2.0)
    assert parse_weighted("a dog : 0.5") == ("a dog", 0.5)
    assert parse_weighted("10:30:1") == ("10:30", 1.0)
    assert parse_weighted("note: hello") == ("note: hello", 1.0)
    assert normalise_glob("*.jpg") == "*.jpg"
    assert normalise_glob("/abs/*.jpg") == "/abs/*.jpg"
    assert normalise_glob("photos/*") == "*/photos/*"
    assert normalise_glob("./x/*.png") == os.path.join(os.getcwd(), "x", "*.png")  # noqa: PTH109, PTH118


def test_a_search_reads_the_catalog_in_one_transaction(engine: SearchEngine) -> None:
    """The look-ups after the texts are encoded (candidates' files, the videos' and sounds'
    windows, the rows shown) share one read transaction: they see one state of the library,
    and each transaction cost ~0.1 ms through SQLAlchemy (12 a search before)."""
    from sqlalchemy import event

    engine.search(Query((Term("x0"),), limit=50))  # loads the indices and the banks
    begun: list[int] = []
    event.listen(engine.library.catalog._engine, "begin", lambda conn: begun.append(1))
    hits = engine.search(Query((Term("x0"),), limit=50, moments=2))
    assert any(h.moments for h in hits), "the search made moments: windows were read"
    assert len(begun) <= 2  # the modalities' states, then the search's snapshot


def test_prepare_loads_the_searched_modalities_indices_before_any_text(
    engine: SearchEngine,
) -> None:
    """A cold query prepares while its text is encoded on another thread: the indices of the
    modalities it searches load then, and only those; nothing is embedded."""
    indices = engine.library._indices
    assert indices.events == {}
    engine.prepare(Query((Term("x0"),), modalities=(IMG, AUD)))
    assert set(indices.events) == {IMG, AUD}
    assert engine.embedder.asked == []  # type: ignore[attr-defined]
    hits = engine.search(Query((Term("x0"),), modalities=(IMG, AUD), limit=50, order="score"))
    assert {h.modality for h in hits} == {IMG, AUD}
