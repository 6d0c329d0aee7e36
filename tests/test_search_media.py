"""The engine over a real indexed sample folder (every modality) with the fake encoders."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from lbsearch.config import Config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.library import Library
from lbsearch.search import Query, SearchEngine, Term
from lbsearch.search.calibration import install_banks
from lbsearch.testing.fake_encoders import FakeEncoders, text_vector
from lbsearch.testing.samples import write_sample_media
from lbsearch.types import Modality

CONFIG = Config()  # the packaged defaults; the user's settings never reach tests
FILES = {
    "sunset_beach.jpg",
    "green_field.png",
    "corridor_depth.png",
    "person_ir.jpg",
    "bouncing_ball.mp4",
    "whistle.wav",
    "hum.flac",
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("indexed")
    media, library = base / "media", base / "library"
    write_sample_media(media)
    with Library.open(library, config=CONFIG, write=True) as lib:
        run_index([media], lib, FakeEncoders(), CONFIG, IndexOptions(), lambda event: None)
        install_banks(lib, FakeEncoders(), CONFIG.relevance)  # as `lbsearch index` does
    return media, library


@pytest.fixture
def engine(indexed: tuple[Path, Path]) -> Iterator[SearchEngine]:
    with Library.open(indexed[1], config=CONFIG) as lib:
        yield SearchEngine(lib, CONFIG, FakeEncoders())


def _names(hits: list) -> list[str]:  # type: ignore[type-arg]
    return [Path(h.path).name for h in hits]


def near_duplicate(original: Path, target: Path) -> Path:
    """The picture with a small mark drawn on it, saved elsewhere (not in the library)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(original) as image:
        copy = image.convert("RGB")
    ImageDraw.Draw(copy).rectangle((10, 10, 30, 30), fill=(255, 0, 255))
    copy.save(target, quality=85)
    return target


def test_text_query_returns_hits_from_every_indexed_modality(engine: SearchEngine) -> None:
    assert engine.indexed_modalities() == tuple(Modality)
    hits = engine.search(Query((Term("a dog barking"),), limit=50))
    assert set(_names(hits)) == FILES, "every indexed file, once"
    fake = engine.embedder
    assert isinstance(fake, FakeEncoders)
    assert dict(fake.texts) == dict.fromkeys(Modality, 1)  # the text, once per modality's tower
    for modality in Modality:
        only = engine.search(Query((Term("a dog barking"),), modalities=(modality,)))
        assert only and {h.modality for h in only} == {modality}
    video = engine.search(Query((Term("ball"),), modalities=(Modality.VIDEO,)))[0]
    assert video.end_s > video.start_s >= 0.0  # a time span, unlike pictures
    assert video.duration_s == pytest.approx(12.0, abs=0.2)


def test_text_vectors_are_the_fakes_hash_seeded_vectors(engine: SearchEngine) -> None:
    fake = engine.embedder
    assert isinstance(fake, FakeEncoders)
    vectors = fake.embed_texts(Modality.AUDIO, ["dog", "cat"])
    assert vectors.shape == (2, fake.dim)
    assert (vectors[0] == text_vector("fake/audio-v1", "dog", fake.dim)).all()


def test_like_finds_the_near_duplicate_first(
    engine: SearchEngine, indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    media = indexed[0]
    copy = near_duplicate(media / "sunset_beach.jpg", tmp_path / "elsewhere" / "sunset.jpg")
    hits = engine.similar(copy)
    assert _names(hits)[0] == "sunset_beach.jpg" and hits[0].score > 0.9
    sound = shutil.copy(media / "whistle.wav", tmp_path / "whistle_copy.wav")
    hits = engine.search(Query((Term(file=Path(sound)),), modalities=(Modality.AUDIO,)))
    assert _names(hits)[0] == "whistle.wav" and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_like_an_indexed_file_uses_its_stored_vectors_and_skips_itself(
    engine: SearchEngine, indexed: tuple[Path, Path]
) -> None:
    hits = engine.similar(indexed[0] / "hum.flac", limit=50)
    assert "hum.flac" not in _names(hits) and len(hits) == len(FILES) - 1
    fake = engine.embedder
    assert isinstance(fake, FakeEncoders) and sum(fake.calls.values()) == 0, "nothing decoded"


def test_a_negative_example_pushes_its_look_alikes_down(
    engine: SearchEngine, indexed: tuple[Path, Path], tmp_path: Path
) -> None:
    copy = near_duplicate(indexed[0] / "sunset_beach.jpg", tmp_path / "sunset.jpg")
    images = (Modality.IMAGE,)
    plain = engine.search(Query((Term("beach"),), modalities=images))
    pushed = engine.search(Query((Term("beach"), Term(file=copy, weight=-1)), modalities=images))
    before = {Path(h.path).name: h.score for h in plain}
    after = {Path(h.path).name: h.score for h in pushed}
    assert after["sunset_beach.jpg"] < before["sunset_beach.jpg"] - 0.3
    assert _names(pushed)[-1] == "sunset_beach.jpg"


def test_filters_on_real_files(engine: SearchEngine, indexed: tuple[Path, Path]) -> None:
    def names(**kw: object) -> set[str]:
        query = Query((Term("x"),), limit=50, **kw)  # type: ignore[arg-type]
        return set(_names(engine.search(query)))

    assert names(path_globs=("depth/*",)) == {"corridor_depth.png"}
    assert names(path_globs=(str(indexed[0] / "*.wav"),)) == {"whistle.wav"}
    assert names(min_duration_s=10.0) == {"bouncing_ball.mp4", "hum.flac"}
    assert names(max_duration_s=5.0) == {"whistle.wav"}
