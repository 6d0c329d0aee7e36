"""The writer's side of `Library`: every change to a library goes through these methods.

Each one checks that the library was opened for writing, commits to the catalog, then makes the
loaded vector indices follow. Nothing here deletes a user's vectors on its own initiative:
files go only when a walk listed their folder and they were not in it (`delete_files`), or when
the user asked (`forget`); a re-embed replaces old vectors only once the new set is complete.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..types import Modality
from .folder import LibraryError

if TYPE_CHECKING:
    from ..catalog import (
        BatchResult,
        FailedFile,
        IndexedFile,
        ModalityChange,
        OfflineFolder,
        RunCounts,
        ShadowModel,
        StoredSegment,
    )
    from ..catalog.store import Catalog
    from .events import IndexEvent
    from .indices import LibraryIndices


class LibraryWrites:
    """Mixed into `Library`, which sets these attributes."""

    root: Path
    writable: bool
    _catalog: Catalog
    _indices: LibraryIndices

    def _require_writer(self) -> None:
        if not self.writable:
            raise LibraryError(
                f"{self.root} was opened read-only", "open it with write=True (this is a bug)"
            )

    # ------------------------------------------------------------------------ runs

    def start_run(self, roots: Sequence[str], encodings: dict[str, str]) -> int:
        """Record an index run's start with the encoding each modality is embedded with."""
        self._require_writer()
        return self._catalog.start_run(roots, encodings)

    def finish_run(
        self, run_id: int, counts: RunCounts, status: str, encodings: dict[str, str] | None = None
    ) -> None:
        self._require_writer()
        self._catalog.finish_run(run_id, counts, status, encodings)

    # ----------------------------------------------------------------------- files

    def write_batch(
        self, batch: Sequence[IndexedFile | FailedFile], shadow: Collection[Modality] = ()
    ) -> BatchResult:
        """Commit a batch to the catalog, then mirror it in the in-memory indices. `shadow`:
        modalities being re-embedded, whose new vectors go beside the serving ones."""
        from ..catalog.records import IndexedFile

        self._require_writer()
        touched = {s.modality for f in batch if isinstance(f, IndexedFile) for s in f.segments}
        for modality in touched - set(shadow):
            self._indices.index(modality)  # load before the commit: then the delta applies as is
        result = self._catalog.write_batch(batch, shadow)
        self._indices.follow(result.deltas.values())
        return result

    def delete_files(self, file_ids: Sequence[int]) -> BatchResult:
        """Remove files with their vectors (a listed folder no longer holds them)."""
        self._require_writer()
        result = self._catalog.delete_files(file_ids)
        self._indices.follow(result.deltas.values())
        return result

    def forget(self, paths: Sequence[str]) -> int:
        """What `lbsearch forget` does: remove the files at or under `paths`, with their
        vectors and offline marks. Returns how many files went."""
        self._require_writer()
        ids = self._catalog.file_ids_at(paths)
        self.delete_files(ids)
        self._catalog.forget_offline(paths)
        return len(ids)

    def count_files(self, under: str) -> int:
        return self._catalog.count_files(under)

    def set_offline(self, roots: Sequence[str], folders: Sequence[OfflineFolder]) -> None:
        """The walked `roots`' folders that could not be listed this time (the others are
        online again)."""
        self._require_writer()
        self._catalog.set_offline(roots, folders)

    # ------------------------------------------------------------------ models

    def set_modality(
        self, modality: Modality, model_id: str, preprocess_version: str, dim: int | None = None
    ) -> ModalityChange:
        """Register the modality's model; another model raises ModelChangedError (see
        `Catalog.set_modality`): nothing is ever wiped here."""
        self._require_writer()
        change = self._catalog.set_modality(modality, model_id, preprocess_version, dim)
        self._indices.follow([change.delta] if change.delta is not None else [])
        return change

    def begin_reembed(self, modality: Modality, target: ShadowModel) -> bool:
        """Start (or resume: True) re-embedding `modality` with `target` beside the old vectors."""
        self._require_writer()
        return self._catalog.begin_shadow(modality, target)

    def reembed_todo(self, modality: Modality) -> int:
        """Files whose old vectors of `modality` have no re-embedded replacement yet."""
        return len(self._catalog.shadow_todo(modality))

    def reembed_paths(self, modality: Modality) -> list[str]:
        """The paths of the files whose old vectors of `modality` have no replacement yet."""
        return self._catalog.shadow_todo_paths(modality)

    def outdated_files(self, modality: Modality) -> int:
        """Files with vectors of an older preprocessing version (what --reembed would refresh)."""
        return self._catalog.outdated_files(modality)

    def reembedded_for_hash(
        self, content_hash: str, modality: Modality
    ) -> tuple[StoredSegment, ...] | None:
        return self._catalog.shadow_segments_for_hash(content_hash, modality)

    def record_reembed_failure(
        self, path: str, modality: Modality, reason: str, detail: str
    ) -> None:
        self._require_writer()
        self._catalog.record_shadow_failure(path, modality, reason, detail)

    def finish_reembed(self, modality: Modality) -> ModalityChange:
        """Switch `modality` to its re-embedded vectors in one transaction, then rebuild its
        index from them (searches use the old index until the new one is swapped in)."""
        self._require_writer()
        change = self._catalog.switch_to_shadow(modality)
        self._indices.rebuild(modality, "re-embedded with a new model")
        self._indices.save([modality])
        return change

    def save(self) -> list[Modality]:
        """Write the changed indices (atomically); returns the modalities written."""
        self._require_writer()
        return self._indices.save()

    def rebuild_index(self, modality: Modality) -> IndexEvent | None:
        """Build the modality's index anew from the catalog's vectors and save it."""
        self._require_writer()
        self._indices.rebuild(modality, "asked")
        self._indices.save([modality])
        return self._indices.events.get(modality)
