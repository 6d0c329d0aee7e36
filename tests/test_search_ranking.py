"""The engine ranks candidates as arrays and makes hits for the shown files only: its answers
equal the exact ones computed here from the stored vectors (each file's best segment, files
ranked by score then path, duplicates tied), and only the shown files' rows are read whole."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lbsearch.catalog import IndexedFile, NewSegment
from lbsearch.config import Config
from lbsearch.library import Library
from lbsearch.search import Query, SearchEngine, Term
from lbsearch.search.calibration import captions
from lbsearch.testing.fake_encoders import FakeEncoders, text_vector
from lbsearch.testing.vectors import clustered_vectors
from lbsearch.types import Modality
from lbsearch.vectors.plan import IndexKind, plan_index

DIM = 32
IMG, VID, AUD = Modality.IMAGE, Modality.VIDEO, Modality.AUDIO
LAYOUT = ((IMG, 400, 1), (VID, 60, 10), (AUD, 50, 5))  # modality, files, segments each
ENCODERS = FakeEncoders(dim=DIM, model_suffix="ranking32")  # its own bank cache


def _files() -> list[IndexedFile]:
    vectors = clustered_vectors(sum(n * per for _, n, per in LAYOUT), DIM, clusters=20, seed=3)
    files, done = [], 0
    for modality, count, per in LAYOUT:
        model = ENCODERS.model_id(modality)
        for i in range(count):
            rows = vectors[done : done + per]
            done += per
            span = 0.0 if per == 1 else 10.0
            segments = tuple(
                NewSegment(modality, j * span, (j + 1) * span, model, rows[j]) for j in range(per)
            )
            path = f"/m/{modality.value}/{i:04d}"
            files.append(IndexedFile(path, "/m", 10, 1, f"h{path}", modality, segments))
    # copies of some files under other names: equal vectors, equal scores, ranked by path
    for original in files[:400:40]:
        for name in ("/m/a-copy", "/m/z-copy"):
            path = f"{name}{original.path.replace('/', '-')}"
            files.append(IndexedFile(path, "/m", 10, 1, f"h{path}", IMG, original.segments))
    return files


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ranking")
    with Library.open(root, write=True) as lib:
        for modality, _, _ in LAYOUT:
            lib.set_modality(modality, ENCODERS.model_id(modality), "1", DIM)
        lib.write_batch(_files())
    return root


@pytest.fixture
def engine(library: Path) -> Iterator[SearchEngine]:
    with Library.open(library) as lib:
        yield SearchEngine(lib, Config(), FakeEncoders(dim=DIM, model_suffix="ranking32"))


def exact(text: str, limit: int) -> list[tuple[str, float, float]]:
    """(path, raw cosine, start) of the best `limit` files by raw cosine, then path."""
    best: dict[str, tuple[float, float]] = {}
    for file in _files():
        query = text_vector(ENCODERS.model_id(file.modality), text, DIM).astype(np.float64)
        for segment in file.segments:
            score = float(np.asarray(segment.vector, dtype=np.float64) @ query)
            if file.path not in best or score > best[file.path][0]:
                best[file.path] = (score, segment.start_s)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    return [(path, score, start) for path, (score, start) in ranked[:limit]]


@pytest.mark.parametrize("text", ["sunset", "dog barking", "a tie among copies"])
def test_results_equal_exact_search_over_every_modality(engine: SearchEngine, text: str) -> None:
    found = engine.search(Query((Term(text),), limit=25, order="score", moments=0))
    expected = exact(text, 25)
    assert [h.path for h in found] == [path for path, _, _ in expected]
    assert [h.score for h in found] == pytest.approx([s for _, s, _ in expected], abs=1e-5)
    assert [h.start_s for h in found] == [start for _, _, start in expected]


def test_copies_tie_and_rank_by_path(engine: SearchEngine) -> None:
    original = "/m/image/0040"
    vector = _files()[40].segments[0].vector
    with_copies = {original, "/m/a-copy-m-image-0040", "/m/z-copy-m-image-0040"}

    class Exactly(FakeEncoders):  # the text's vector is the original's: it and its copies win
        def embed_texts(self, modality: Modality, texts: list[str]) -> np.ndarray:  # type: ignore[override]
            if len(texts) == len(captions()):  # the reference bank (cached for every test)
                return super().embed_texts(modality, texts)
            return np.stack([vector for _ in texts])

    engine.embedder = Exactly(dim=DIM, model_suffix="ranking32")
    found = engine.search(Query((Term("x"),), modalities=(IMG,), limit=3, order="score"))
    assert [h.path for h in found] == sorted(with_copies)
    assert len({h.score for h in found}) == 1


def test_relevance_order_is_by_relevance_then_path_with_raw_scores(engine: SearchEngine) -> None:
    found = engine.search(Query((Term("city at night"),), limit=30, moments=0))
    keys = [(-(h.relevance or 0.0), h.path) for h in found]
    assert keys == sorted(keys) and len({h.path for h in found}) == 30
    by_path = {f.path: f for f in _files()}
    for hit in found:  # score is the raw cosine of the hit's segment, whatever FAISS ranked by
        file = by_path[hit.path]
        segment = next(s for s in file.segments if s.start_s == hit.start_s)
        query = text_vector(ENCODERS.model_id(hit.modality), "city at night", DIM)
        assert hit.score == pytest.approx(float(np.asarray(segment.vector) @ query), abs=1e-5)


def test_only_the_shown_files_rows_are_read_whole(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a record for each of the ~200 candidates cost more than the search (10-20 ms
    at 100k segments): the full rows are read for the `limit` shown, once."""
    asked: list[int] = []
    read = engine.library.segments_by_ids

    def counted(ids, where=None):  # type: ignore[no-untyped-def]
        asked.extend(int(i) for i in ids)
        return read(ids, where)

    monkeypatch.setattr(engine.library, "segments_by_ids", counted)
    found = engine.search(Query((Term("rain"),), limit=7, moments=0))
    assert len(found) == 7 and sorted(asked) == sorted(h.segment_id for h in found)


def test_min_score_and_limit_apply_after_ranking(engine: SearchEngine) -> None:
    everything = engine.search(Query((Term("music"),), limit=60, order="score", moments=0))
    bar = everything[30].score
    kept = engine.search(Query((Term("music"),), limit=60, order="score", min_score=bar, moments=0))
    assert [h.path for h in kept] == [h.path for h in everything if h.score >= bar]


def test_a_library_of_10k_segments_is_searched_exactly() -> None:
    """bench/query.py's 10k library (half pictures, 30% video, 20% audio segments): every
    modality's index is exact, so its results are exact search's."""
    for share in (0.5, 0.3, 0.2):
        assert plan_index(int(10_000 * share), 768, Config().index).kind is IndexKind.FLAT


def test_the_first_k_follows_the_segments_a_file_took(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each segment asked of the index costs a catalog row: a picture takes one segment, so
    after one search 20 pictures are asked as ~25 segments (was 80 every time); videos (10
    windows each) are asked for more, and the answer stays exact."""
    asked: dict[Modality, list[int]] = defaultdict(list)
    search = engine.library.search

    def counted(modality, queries, k, **kwargs):  # type: ignore[no-untyped-def]
        asked[modality].append(k)
        return search(modality, queries, k, **kwargs)

    monkeypatch.setattr(engine.library, "search", counted)
    for text in ("first", "second"):
        found = engine.search(Query((Term(text),), modalities=(IMG, VID), limit=20, moments=0))
        assert len(found) == 20
    assert asked[IMG][0] == 80 and asked[IMG][-1] <= 30
    assert asked[VID][-1] >= asked[IMG][-1]
    order = engine.search(Query((Term("third"),), limit=25, order="score", moments=0))
    assert [h.path for h in order] == [path for path, _, _ in exact("third", 25)]
