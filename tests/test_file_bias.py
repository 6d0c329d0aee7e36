"""The file-bias column (example-file queries' hubness correction from a sample of the library's
own segments): exact scores for both kinds of query, incremental = full recomputation, the
sample drawn once and again when due, old index files upgraded from stored vectors, and the file
queries' null measured with the same sample."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from lbsearch.config import Config, IndexConfig, RelevanceConfig
from lbsearch.library import Library
from lbsearch.library.events import IndexAction
from lbsearch.search.calibration import install_file_sample
from lbsearch.testing.library import assert_library_consistent, indexed_file, unit_vectors
from lbsearch.types import Modality
from lbsearch.vectors.bias import Bank, null_moments
from lbsearch.vectors.filesample import FileSample, SampleGroup, read_file_sample, sample_path
from lbsearch.vectors.index import VectorIndex
from lbsearch.vectors.kinds import BiasKind
from lbsearch.vectors.plan import IndexKind, IndexPlan
from lbsearch.vectors.store import read_index_meta

IMG, AUD = Modality.IMAGE, Modality.AUDIO
DIM, K = 32, 5


def brute_file_biases(sample: FileSample, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """A segment's file bias the slow way: its own entry left out, the mean of the k best."""
    bank_ids, bank = sample.bank(DIM)
    out = []
    for segment_id, vector in zip(ids.tolist(), vectors, strict=True):
        sims = sorted(
            (float(vector @ b) for i, b in zip(bank_ids.tolist(), bank, strict=True)
             if i != segment_id),
            reverse=True,
        )  # fmt: skip
        out.append(np.mean(sims[:K]))
    return np.array(out)


def files(modality: Modality, vectors: np.ndarray, start: int = 0, per_file: int = 1) -> list:  # type: ignore[type-arg]
    suffix = "jpg" if modality is IMG else "wav"
    return [
        indexed_file(
            f"/r/{modality.value}{start + i}.{suffix}",
            vectors[i : i + per_file],
            modality=modality,
            model_id=f"{modality.value}-1",
            root="/r",
            window_s=10.0 if per_file > 1 else 0.0,
        )
        for i in range(0, len(vectors), per_file)
    ]


def open_library(root: Path, index: IndexConfig | None = None, write: bool = True) -> Library:
    return Library.open(root, config=Config(index=index or IndexConfig()), write=write)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with open_library(tmp_path / "lib") as lib:
        lib.set_modality(IMG, "image-1", "1", DIM)
        lib.set_modality(AUD, "audio-1", "1", DIM)
    return tmp_path / "lib"


def stored(lib: Library, modality: Modality) -> tuple[np.ndarray, np.ndarray]:
    chunk = lib.catalog.vectors_by_ids(modality, lib.catalog.segment_ids(modality).ids)
    return chunk.ids, chunk.vectors


def settings(size: int = 60, growth: float = 4.0) -> RelevanceConfig:
    return RelevanceConfig(bank_k=K, file_sample=size, file_sample_growth=growth)


@pytest.mark.parametrize("exact_max", [100000, 100])  # a flat index, and an IVF one
def test_both_bias_columns_score_exactly_cosine_minus_alpha_bias(
    root: Path, exact_max: int
) -> None:
    config = IndexConfig(exact_max_segments=exact_max, nprobe=10**6)  # IVF: scan every list
    text_bank = Bank("bank-1", unit_vectors(100, DIM, seed=1), K)
    with open_library(root, config) as lib:
        lib.use_bank(IMG, text_bank)
        lib.write_batch(files(IMG, unit_vectors(900, DIM, seed=2)))
        lib.write_batch(files(AUD, unit_vectors(200, DIM, seed=3)))
        assert install_file_sample(lib, settings()) == "no sample yet"
    sample = read_file_sample(sample_path(root / "vectors"))
    assert sample is not None and {g.modality for g in sample.groups} == {"image", "audio"}
    with open_library(root, config, write=False) as lib:
        ids, vectors = stored(lib, IMG)
        queries = unit_vectors(3, DIM, seed=9)
        cosine = queries @ vectors.T
        text = np.array([np.sort(text_bank.vectors @ v)[-K:].mean() for v in vectors])
        file = brute_file_biases(sample, ids, vectors)
        for kind, biases in ((BiasKind.TEXT, text), (BiasKind.FILE, file)):
            found = lib.search(IMG, queries, len(ids), alpha=0.7, bias=kind)
            expected = cosine - 0.7 * biases[None, :]
            for row in range(3):
                positions = np.searchsorted(ids, found.ids[row])
                assert np.allclose(found.scores[row], expected[row, positions], atol=1e-5), kind
            assert np.allclose(lib.segment_biases(IMG, ids, kind), biases, atol=1e-5)
        raw = lib.search(IMG, queries, 5, alpha=0.0, bias=BiasKind.FILE)
        assert np.allclose(raw.scores, np.sort(cosine, axis=1)[:, ::-1][:, :5], atol=1e-6)


def test_incremental_file_biases_equal_a_full_recomputation(root: Path) -> None:
    data = unit_vectors(600, DIM, seed=4)
    with open_library(root) as lib:
        lib.write_batch(files(IMG, data[:150]))
        lib.write_batch(files(AUD, unit_vectors(40, DIM, seed=5)))
        install_file_sample(lib, settings(growth=0))  # drawn now, kept as the library grows
        for lo in range(150, 600, 150):  # three more runs' batches, each followed by the index
            lib.write_batch(files(IMG, data[lo : lo + 150], lo))
            assert install_file_sample(lib, settings(growth=0)) == ""
        ids, vectors = stored(lib, IMG)
        incremental = lib.segment_biases(IMG, ids, BiasKind.FILE)
        lib._indices.rebuild(IMG, "a full recomputation")
        full = lib.segment_biases(IMG, ids, BiasKind.FILE)
    sample = read_file_sample(sample_path(root / "vectors"))
    assert sample is not None
    assert np.allclose(incremental, full, atol=1e-6)
    assert np.allclose(full, brute_file_biases(sample, ids, vectors), atol=1e-5)
    assert_library_consistent(root, saved=True)


def test_the_sample_is_drawn_once_and_again_when_due(root: Path) -> None:
    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(40, DIM, seed=6), per_file=4))  # 10 files
        assert install_file_sample(lib, settings(size=20)) == "no sample yet"
        first = lib.file_sample()
        assert first is not None and [g.modality for g in first.groups] == ["image"]
        members = first.groups[0].ids
        segments = lib.segments_by_ids(members)
        assert len({segments[int(i)].file.id for i in members}) == len(members) == 10, (
            "one segment per file"
        )
        assert install_file_sample(lib, settings(size=20)) == "", "kept"
        lib.write_batch(files(AUD, unit_vectors(12, DIM, seed=7)))
        assert "new" in install_file_sample(lib, settings(size=20)), "a modality came"
        second = lib.file_sample()
        assert second is not None and sorted(len(g.ids) for g in second.groups) == [10, 10]
        lib.write_batch(files(IMG, unit_vectors(160, DIM, seed=8), start=100))
        assert "grown" in install_file_sample(lib, settings(size=20)), "52 -> 212 segments"
        third = lib.file_sample()
    assert third is not None and third.fingerprint != second.fingerprint != first.fingerprint
    for modality in (IMG, AUD):
        meta = read_index_meta(root / "vectors" / f"{modality.value}.faiss")
        assert meta is not None and meta.file_bias == third.fingerprint
    assert_library_consistent(root, saved=True)
    with open_library(root, write=False) as lib:  # a reader never draws one
        assert install_file_sample(lib, settings(size=50)) == ""


def test_a_reader_computes_the_file_biases_of_the_saved_sample(root: Path) -> None:
    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(80, DIM, seed=10)))
        install_file_sample(lib, settings())
    sample = read_file_sample(sample_path(root / "vectors"))
    assert sample is not None
    (root / "vectors" / "image.faiss").unlink()  # a reader rebuilds it in memory
    with open_library(root, write=False) as lib:
        ids, vectors = stored(lib, IMG)
        expected = brute_file_biases(sample, ids, vectors)
        assert np.allclose(lib.segment_biases(IMG, ids, BiasKind.FILE), expected, atol=1e-5)


def test_the_file_null_is_the_sample_queried_against_the_modality(root: Path) -> None:
    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(300, DIM, seed=11)))
        lib.write_batch(files(AUD, unit_vectors(100, DIM, seed=12)))
        install_file_sample(lib, settings())
        ids, vectors = stored(lib, AUD)
        sample = lib.file_sample()
        assert sample is not None
        biases = lib.segment_biases(AUD, ids, BiasKind.FILE)
        moments = lib.null_moments(AUD)
    assert moments is not None
    expected = null_moments(sample.bank(DIM)[1], vectors, biases)  # every audio segment
    assert np.allclose(moments["file"], expected, atol=1e-5)


def write_format_2(path: Path, vectors: np.ndarray, ids: np.ndarray, meta: dict) -> None:  # type: ignore[type-arg]
    """An index file as lbsearch wrote it before the file-bias column: one bias column."""
    import json

    index = VectorIndex.new(IndexPlan(IndexKind.FLAT), DIM + 1)
    index.add(ids, np.hstack([vectors, np.full((len(vectors), 1), 0.25, np.float32)]))
    with path.open("wb") as handle:
        index.write(handle)
        trailer = json.dumps({**meta, "format": 2, "bias": ""}).encode()
        handle.write(trailer + struct.pack("<Q", len(trailer)) + b"LBSVEC01")


@pytest.mark.parametrize("write", [True, False])
def test_an_index_file_of_the_old_format_is_rebuilt_from_stored_vectors(
    root: Path, write: bool
) -> None:
    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(120, DIM, seed=13)))
        install_file_sample(lib, settings())
    path = root / "vectors" / "image.faiss"
    meta = read_index_meta(path)
    assert meta is not None and meta.format == 3
    with open_library(root, write=False) as lib:
        ids, before = stored(lib, IMG)
    old = {k: v for k, v in meta.__dict__.items() if k not in ("file_bias", "null")}
    write_format_2(path, before, ids, old)
    assert read_index_meta(path) is None, "an older format is not used as it is"
    with open_library(root, write=write) as lib:
        assert lib.index_size(IMG) == 120
        event = lib.index_events.get(IMG)
        assert event is not None and event.action is IndexAction.REBUILT
        sample = lib.file_sample()
        assert sample is not None
        expected = brute_file_biases(sample, ids, before)
        assert np.allclose(lib.segment_biases(IMG, ids, BiasKind.FILE), expected, atol=1e-5)
        assert np.array_equal(stored(lib, IMG)[1], before), "nothing re-embedded or changed"
    upgraded = read_index_meta(path)
    if write:  # the writer saved it in the new format
        assert upgraded is not None and upgraded.format == 3
        assert upgraded.file_bias == sample.fingerprint
        assert_library_consistent(root, saved=True)
    else:
        assert upgraded is None, "a reader leaves the file to the next writer"


def test_the_file_bias_takes_planted_hubs_out_of_example_queries_top_10() -> None:
    """Planted space: 40 concepts in three modality cones over a common offset, hubs near the
    offset and the centre of the cones. Examples as queries: hubs fill part of the raw top 10;
    the library-sample bias takes them out and ranks the example's concept higher."""
    rng = np.random.default_rng(5)
    dim, concepts, per = 64, 40, 6

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    centres = unit(rng.standard_normal((concepts, dim)))
    cones = unit(rng.standard_normal((3, dim)))
    common = unit(rng.standard_normal(dim))
    rows, concept = [], []
    for m in range(3):
        labels = np.repeat(np.arange(concepts), per)
        noise = rng.standard_normal((len(labels), dim)) / np.sqrt(dim)
        rows.append(0.5 * centres[labels] + 0.4 * cones[m] + 0.6 * common + 0.6 * noise)
        concept += labels.tolist()
    hubs = common + cones.mean(axis=0) + 0.1 * rng.standard_normal((15, dim)) / np.sqrt(dim)
    items = unit(np.vstack([*rows, hubs])).astype(np.float32)
    labels = np.array(concept + [-1] * len(hubs))
    ids = np.arange(len(items), dtype=np.int64)
    members = np.sort(rng.choice(len(items), 300, replace=False))
    sample = FileSample((SampleGroup("all", "m", ids[members], items[members]),), 10, 300, 0)
    biases = sample.biases(ids, items)
    assert biases is not None
    queries = rng.choice(len(items) - len(hubs), 100, replace=False)

    def measured(alpha: float) -> tuple[float, float]:
        scores = items[queries] @ items.T - alpha * biases[None, :]
        scores[np.arange(len(queries)), queries] = -np.inf  # an example never comes back
        top = np.argsort(-scores, axis=1)[:, :10]
        hub_share = float((labels[top] == -1).mean())
        precision = float((labels[top] == labels[queries][:, None]).mean())
        return hub_share, precision

    (raw_hubs, raw_precision), (hubs_now, precision_now) = measured(0.0), measured(1.0)
    assert raw_hubs > 0.1, "the planted hubs come up for raw cosine"
    assert hubs_now < raw_hubs / 3
    assert precision_now > raw_precision + 0.03


class TextTowers:
    """Just enough of an embedder for the caption bank: random unit vectors per text."""

    def embed_texts(self, modality: Modality, texts: list[str]) -> np.ndarray:
        return unit_vectors(len(texts), DIM, seed=len(texts))


def test_a_new_bank_and_a_new_sample_rebuild_each_index_once(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.library.indices import LibraryIndices
    from lbsearch.search.calibration import install_banks

    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(100, DIM, seed=14)))
        lib.write_batch(files(AUD, unit_vectors(50, DIM, seed=15)))
        rebuilt: list[Modality] = []
        real = LibraryIndices._rebuild

        def counted(self: LibraryIndices, modality: Modality, reason: str) -> object:
            rebuilt.append(modality)
            return real(self, modality, reason)

        monkeypatch.setattr(LibraryIndices, "_rebuild", counted)
        install_banks(lib, TextTowers(), settings())  # type: ignore[arg-type]
        assert sorted(rebuilt) == sorted([IMG, AUD]), "one pass per index for both columns"
        ids, vectors = stored(lib, IMG)
        sample = lib.file_sample()
        assert sample is not None
        expected = brute_file_biases(sample, ids, vectors)
        assert np.allclose(lib.segment_biases(IMG, ids, BiasKind.FILE), expected, atol=1e-5)
        assert lib.segment_biases(IMG, ids, BiasKind.TEXT).min() > 0, "the caption bank's"
        rebuilt.clear()
        install_banks(lib, TextTowers(), settings())  # type: ignore[arg-type]
        assert rebuilt == [], "nothing due: nothing rebuilt"
    assert_library_consistent(root, saved=True)


def test_an_example_file_query_ranks_by_the_file_bias_and_reports_the_cosine(root: Path) -> None:
    from lbsearch.search import Query, SearchEngine, Term

    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(200, DIM, seed=16)))
        install_file_sample(lib, settings())
    alpha = 1.0
    config = Config(relevance=RelevanceConfig(bank_k=K, alpha=alpha, file_sample=60))
    with open_library(root, write=False) as lib:
        engine = SearchEngine(lib, config, TextTowers())  # type: ignore[arg-type]
        hits = engine.search(Query((Term(file=Path("/r/image0.jpg")),), limit=20))
        ids, vectors = stored(lib, IMG)
        file_bias = lib.segment_biases(IMG, ids, BiasKind.FILE)
        text_bias = lib.segment_biases(IMG, ids, BiasKind.TEXT)
    cosine = vectors @ vectors[0]
    at = {int(i): n for n, i in enumerate(ids)}
    for hit in hits:
        assert hit.score == pytest.approx(float(cosine[at[hit.segment_id]]), abs=1e-5)
    corrected = cosine - alpha * file_bias
    corrected[0] = -np.inf  # the example itself never comes back
    assert [h.segment_id for h in hits] == ids[np.argsort(-corrected)[:20]].tolist()
    by_text = cosine - alpha * text_bias
    by_text[0] = -np.inf
    assert ids[np.argsort(-by_text)[:20]].tolist() != [h.segment_id for h in hits], (
        "the caption bank's bias would rank otherwise (what example queries got before)"
    )


def test_a_text_query_keeps_its_bias_while_a_file_query_runs_beside_it(root: Path) -> None:
    """The service's engine runs searches side by side (its lock covers each index search only).
    Before: the bias kind was the engine's state, so a file query that started during a text
    query made the text query's next index search subtract the file bias."""
    import threading
    import time

    from lbsearch.cli.serve.examples import Example, ServerEngine
    from lbsearch.search import Query, Term

    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(200, DIM, seed=16)))
        lib.write_batch(files(AUD, unit_vectors(100, DIM, seed=17), start=1000))
        install_file_sample(lib, settings())
    config = Config(relevance=RelevanceConfig(bank_k=K, alpha=1.0, file_sample=60))
    with open_library(root, write=False) as lib:
        engine = ServerEngine(lib, config, TextTowers())
        engine.add_examples({"/up/x.jpg": Example(IMG, unit_vectors(1, DIM, seed=9)[0], None)})
        real, seen = lib.search, []
        file_query = threading.Thread(
            target=engine.search, args=(Query((Term(file=Path("/up/x.jpg")),)),)
        )

        def spy(*args: object, **kwargs: object) -> object:
            seen.append((threading.current_thread() is file_query, kwargs.get("bias")))
            if len(seen) == 1:  # the text query's first index search: the file query starts
                file_query.start()
                time.sleep(0.3)  # it waits for the engine's lock, its own bias chosen
            return real(*args, **kwargs)  # type: ignore[arg-type]

        lib.search = spy  # type: ignore[method-assign,assignment]
        engine.search(Query((Term(text="a dog"),)))
        file_query.join(10)
    text_biases = [bias for in_file_query, bias in seen if not in_file_query]
    file_biases = [bias for in_file_query, bias in seen if in_file_query]
    assert len(text_biases) >= 2 and set(text_biases) == {BiasKind.TEXT}
    assert file_biases and set(file_biases) == {BiasKind.FILE}


def test_file_sample_0_drops_the_sample_and_every_file_bias(root: Path) -> None:
    """`file_sample = 0` means no sample: a writer deletes the saved one and rebuilds the file
    columns with none (was: the old sample stayed in use, "due" at every run)."""
    with open_library(root) as lib:
        lib.write_batch(files(IMG, unit_vectors(40, DIM, seed=21)))
        assert install_file_sample(lib, settings(size=20)) == "no sample yet"
        assert lib.file_sample() is not None and sample_path(root / "vectors").exists()
        assert "file_sample is 0" in install_file_sample(lib, settings(size=0))
        assert lib.file_sample() is None and not sample_path(root / "vectors").exists()
        ids, _ = stored(lib, IMG)
        assert not lib._indices.biases(IMG, ids, BiasKind.FILE).any()
        assert install_file_sample(lib, settings(size=0)) == "", "nothing left to drop"
    meta = read_index_meta(root / "vectors" / "image.faiss")
    assert meta is not None and meta.file_bias == ""
    assert_library_consistent(root, saved=True)
    with open_library(root) as lib:  # a later run with a sample again draws one
        assert install_file_sample(lib, settings(size=20)) == "no sample yet"
