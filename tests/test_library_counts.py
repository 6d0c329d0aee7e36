"""Library.modality_states: segment counts are kept while no modality changed, and follow a
writer's commits at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbsearch.catalog.store import Catalog
from lbsearch.library import Library
from lbsearch.testing.library import image_files as batch
from lbsearch.types import Modality

IMG = Modality.IMAGE


def test_counts_are_read_once_per_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counted: list[bool] = []
    real = Catalog.modality_states

    def spy(self: Catalog, *, counts: bool = True) -> dict[Modality, object]:
        counted.append(counts)
        return real(self, counts=counts)  # type: ignore[return-value]

    monkeypatch.setattr(Catalog, "modality_states", spy)
    with Library.open(tmp_path / "lib", write=True) as writer:
        writer.set_modality(IMG, "m", "1", 16)
        writer.write_batch(batch(0, 30))
        with Library.open(tmp_path / "lib") as reader:
            assert reader.modality_states()[IMG].segment_count == 30
            counted.clear()
            for _ in range(5):
                assert reader.modality_states()[IMG].segment_count == 30
            assert counted == [False] * 5  # no count while nothing changed
            writer.write_batch(batch(30, 4))
            assert reader.modality_states()[IMG].segment_count == 34
            assert writer.forget(["/media/0.jpg", "/media/1.jpg"]) == 2
            assert reader.modality_states()[IMG].segment_count == 32
            assert writer.modality_states()[IMG].segment_count == 32
