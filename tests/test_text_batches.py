"""Concurrent text queries share a pass through the text tower (a service's searches at once):
each caller gets exactly its own vectors, a lone caller is not delayed, errors reach the callers
of their pass only, and towers never share a pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from lbsearch.config import load_config
from lbsearch.embedder import open_embedder
from lbsearch.embedder.text_batches import TextBatches
from lbsearch.types import Modality


class SlowTower:
    """Encodes a text as [len(text), first letter]; the first pass blocks until released."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def encode(self, texts: list[str]) -> np.ndarray:
        self.passes.append(list(texts))
        self.started.set()
        if len(self.passes) == 1:
            assert self.release.wait(10)
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def _after_first_pass_started(
    batches: TextBatches, tower: SlowTower, later: list[list[str]]
) -> list[dict[str, np.ndarray]]:
    """Run ["first"] (which blocks), then the `later` callers one by one, each waiting before
    the next arrives; then release the first pass."""
    pool = ThreadPoolExecutor(len(later) + 1)
    first = pool.submit(batches.run, "t", ["first"], tower.encode)
    assert tower.started.wait(10)
    futures = []
    for count, texts in enumerate(later, start=1):
        futures.append(pool.submit(batches.run, "t", texts, tower.encode))
        _wait_for(partial(_waiting_at_least, batches, count))
    tower.release.set()
    results = [first.result(10)] + [f.result(10) for f in futures]
    pool.shutdown()
    return results


def _waiting_at_least(batches: TextBatches, count: int) -> bool:
    return len(batches._waiting) >= count


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_lone_caller_runs_its_own_pass_at_once() -> None:
    tower, batches = SlowTower(), TextBatches()
    tower.release.set()
    got = batches.run("t", ["ab", "c", "ab"], tower.encode)
    assert tower.passes == [["ab", "c"]] and batches.passes == 1
    np.testing.assert_array_equal(got["ab"], [2, ord("a")])
    np.testing.assert_array_equal(got["c"], [1, ord("c")])


def test_callers_that_arrive_while_the_tower_runs_share_the_next_pass() -> None:
    tower, batches = SlowTower(), TextBatches()
    later = [["dog"], ["cat", "dog"], ["bird"], ["elephant"]]
    results = _after_first_pass_started(batches, tower, later)
    assert tower.passes == [["first"], ["dog", "cat", "bird", "elephant"]]
    for texts, got in zip([["first"], *later], results, strict=True):
        assert sorted(got) == sorted(set(texts))  # each caller gets its own texts, no others'
        for text in texts:
            np.testing.assert_array_equal(got[text], [len(text), ord(text[0])])


def test_a_pass_takes_at_most_max_texts_oldest_first() -> None:
    tower, batches = SlowTower(), TextBatches(max_texts=3)
    later = [["a1", "a2"], ["b1", "b2"], ["c1"]]
    _after_first_pass_started(batches, tower, later)
    assert tower.passes == [["first"], ["a1", "a2", "c1"], ["b1", "b2"]]


def test_an_error_reaches_the_callers_of_its_pass_and_the_next_pass_runs() -> None:
    batches = TextBatches()
    calls: list[list[str]] = []

    def failing(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        raise RuntimeError("tower broke")

    with pytest.raises(RuntimeError, match="tower broke"):
        batches.run("t", ["x"], failing)
    got = batches.run("t", ["y"], lambda texts: np.ones((len(texts), 2), dtype=np.float32))
    assert calls == [["x"]] and list(got) == ["y"]


def test_towers_never_share_a_pass() -> None:
    tower, batches = SlowTower(), TextBatches()
    pool = ThreadPoolExecutor(3)
    first = pool.submit(batches.run, "t", ["first"], tower.encode)
    assert tower.started.wait(10)
    other_calls: list[list[str]] = []

    def other(texts: list[str]) -> np.ndarray:
        other_calls.append(texts)
        return np.zeros((len(texts), 2), dtype=np.float32)

    a = pool.submit(batches.run, "other", ["x"], other)
    _wait_for(lambda: len(batches._waiting) >= 1)
    b = pool.submit(batches.run, "t", ["y"], tower.encode)
    _wait_for(lambda: len(batches._waiting) >= 2)
    tower.release.set()
    first.result(10), a.result(10), b.result(10)
    pool.shutdown()
    assert other_calls == [["x"]] and tower.passes == [["first"], ["y"]]


def test_concurrent_searches_share_text_tower_passes_with_the_same_vectors(
    tiny_config: Path,
) -> None:
    """Before: each caller ran its own pass, one after another (8 passes for 8 callers)."""
    embedder = open_embedder(load_config(tiny_config), backend="torch")
    embedder.embed_texts(Modality.IMAGE, ["warm up"])  # loads the tower, to wrap it below
    texts = [f"a photo of thing number {i}" for i in range(8)] + ["a dog"]
    expected = open_embedder(load_config(tiny_config), backend="torch").embed_texts(
        Modality.IMAGE, texts
    )
    tower = embedder._text[embedder._text_identity(Modality.IMAGE)]
    passes: list[int] = []
    original = tower.encode
    gate = threading.Event()

    def counted(batch: list[str]) -> np.ndarray:
        passes.append(len(batch))
        gate.wait(10)  # the first pass holds the tower until every caller is waiting
        return original(batch)

    tower.encode = counted  # type: ignore[method-assign,assignment]
    with ThreadPoolExecutor(len(texts)) as pool:
        futures = [pool.submit(embedder.embed_texts, Modality.IMAGE, [t]) for t in texts]
        _wait_for(lambda: len(embedder._text_batches._waiting) >= len(texts) - 1)
        gate.set()
        rows = [f.result(10)[0] for f in futures]
    assert sorted(passes) == [1, len(texts) - 1]
    np.testing.assert_allclose(np.stack(rows), expected, atol=1e-5)


def test_a_caller_asking_for_texts_the_running_pass_embeds_takes_them_from_it() -> None:
    """A cold query encodes its text early on a thread; the search then asks for the same text
    while that pass runs, and must not run a second pass for it."""
    tower, batches = SlowTower(), TextBatches()
    later = [["first"], ["dog"]]  # the same text; one the running pass does not embed
    results = _after_first_pass_started(batches, tower, later)
    assert tower.passes == [["first"], ["dog"]]  # was [["first"], ["first", "dog"]]
    np.testing.assert_array_equal(results[1]["first"], results[0]["first"])
    assert list(results[1]) == ["first"] and list(results[2]) == ["dog"]
