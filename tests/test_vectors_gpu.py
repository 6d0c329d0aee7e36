"""FAISS's GPU copy of an index, on a machine without one: faiss is made to report a GPU whose
"copy" is a separate CPU index that, like faiss's GPU flat indices, cannot remove ids. The copy
goes on the configured GPU, follows additions, and survives a reader's refresh after a writer's
commit (copying a large index again would pause the next search)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lbsearch.catalog import IndexedFile
from lbsearch.config import Config, IndexConfig, RuntimeConfig
from lbsearch.library import Library
from lbsearch.testing.library import indexed_file, unit_vectors
from lbsearch.types import Modality
from lbsearch.vectors import faiss_module
from lbsearch.vectors import index as index_module

IMG = Modality.IMAGE
MODEL = "img-1"


class FakeGpuIndex:
    """Stands in for a GPU index: searches and adds like the CPU one, cannot remove ids."""

    def __init__(self, cpu_index: Any) -> None:
        self.copy = faiss_module().clone_index(cpu_index)
        self.searches = 0

    @property
    def ntotal(self) -> int:
        return int(self.copy.ntotal)

    def search(self, q: np.ndarray, k: int, params: object = None) -> tuple[Any, Any]:
        self.searches += 1
        return self.copy.search(q, k)

    def add_with_ids(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.copy.add_with_ids(vectors, ids)

    def remove_ids(self, selector: object) -> int:
        raise RuntimeError("remove_ids not implemented for this type of index")


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, FakeGpuIndex]]]:
    """Every copy made: (GPU number, copy)."""
    faiss = faiss_module()
    made: list[tuple[int, FakeGpuIndex]] = []

    def to_gpu(resources: object, device: int, index: object) -> FakeGpuIndex:
        made.append((device, FakeGpuIndex(index)))
        return made[-1][1]

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    monkeypatch.setitem(index_module._state, "gpu_resources", None)
    yield made


def pictures(vectors: np.ndarray, start: int = 0) -> list[IndexedFile]:
    return [
        indexed_file(f"/r/{start + i}.jpg", v[None, :], model_id=MODEL, root="/r")
        for i, v in enumerate(vectors)
    ]


def open_library(root: Path, write: bool = True, **settings: Any) -> Library:
    runtime = RuntimeConfig(device=settings.pop("runtime_device", "auto"))
    config = Config(index=IndexConfig(**settings), runtime=runtime)
    return Library.open(root, config=config, write=write)


@pytest.mark.parametrize(
    ("settings", "gpu"),
    [
        ({}, 0),
        ({"device": "gpu:1"}, 1),
        ({"device": "cuda:3"}, 3),
        ({"runtime_device": "cuda:2"}, 2),  # the encoders' GPU
        ({"device": "gpu:1", "runtime_device": "cuda:2"}, 1),  # [index] device names its own
    ],
)
def test_the_gpu_copy_goes_on_the_configured_gpu(
    tmp_path: Path, gpus: list[tuple[int, FakeGpuIndex]], settings: dict[str, str], gpu: int
) -> None:
    """Before: always GPU 0, whatever the settings said."""
    data = unit_vectors(20, 16)
    with open_library(tmp_path / "lib", **settings) as library:
        library.set_modality(IMG, MODEL, "1", 16)
        library.write_batch(pictures(data))
        assert library.search(IMG, data[3:4], 1).ids[0, 0] >= 0
    assert [number for number, _ in gpus] == [gpu]


def test_a_bad_index_device_is_a_config_error(tmp_path: Path) -> None:
    from lbsearch.errors import ConfigError

    with pytest.raises(ConfigError, match="gpu:N"):
        open_library(tmp_path / "lib", device="gpu1")


def test_additions_keep_the_gpu_copy_and_removals_replace_it(
    tmp_path: Path, gpus: list[tuple[int, FakeGpuIndex]]
) -> None:
    """Before: every addition dropped the copy, so each indexer commit meant a full copy."""
    data = unit_vectors(60, 16, seed=3)
    with open_library(tmp_path / "lib") as library:
        library.set_modality(IMG, MODEL, "1", 16)
        library.write_batch(pictures(data[:20]))
        first = library.search(IMG, data[:1], 1).ids[0, 0]
        library.write_batch(pictures(data[20:40], start=20))
        found = library.search(IMG, data[30:31], 1)
        assert len(gpus) == 1 and gpus[0][1].searches == 2  # the same copy, kept in step
        assert found.ids[0, 0] == first + 30  # segment ids follow the files' order
        library.delete_files([f.id for f in library.catalog.iter_files("/r")][:5])
        again = library.search(IMG, data[:1], 5).ids[0]
        assert first not in again  # the GPU could not remove it: a fresh copy answered
        assert len(gpus) == 2


def test_a_readers_gpu_copy_survives_a_refresh_after_a_writers_commit(
    tmp_path: Path, gpus: list[tuple[int, FakeGpuIndex]]
) -> None:
    """Before: the reloaded index had no copy, so the first search after each commit copied
    the whole index to the GPU again."""
    data = unit_vectors(50, 16, seed=5)
    root = tmp_path / "lib"
    with open_library(root) as writer:
        writer.set_modality(IMG, MODEL, "1", 16)
        writer.write_batch(pictures(data[:20]))
        writer.save()
    with open_library(root) as writer, open_library(root, write=False) as reader:
        assert reader.search(IMG, data[5:6], 1).ids.shape == (1, 1)
        assert len(gpus) == 1
        writer.write_batch(pictures(data[20:35], start=20))
        reader.refresh()
        top = reader.search(IMG, data[30:31], 1).ids[0, 0]
        assert len(gpus) == 1 and gpus[0][1].searches == 2 and gpus[0][1].ntotal == 35
        writer.save()
        reader.refresh()  # the saved file: the same ids, nothing to change on the GPU
        assert reader.search(IMG, data[30:31], 1).ids[0, 0] == top
        assert len(gpus) == 1
