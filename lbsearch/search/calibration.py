"""The reference bank of text queries, and each modality's calibration.

The bank is a packaged list of ~1,000 generic captions (bank.txt, written for lbsearch: everyday
subjects of every modality). Embedded once per text tower (cached in the user cache folder) it
gives each segment its hubness bias (lbsearch.vectors.bias) and each modality its null
distribution. `install_banks` hands a library the bank of every modality whose index was built
with another (a new library, a changed text tower, changed captions or k): a writer saves it and
rebuilds the index from stored vectors in one pass; a reader uses it in memory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import RelevanceConfig
from ..types import Modality
from ..vectors.bias import Bank, bank_fingerprint
from .relevance import Calibration

if TYPE_CHECKING:
    from ..embedder import Embedder
    from ..library import Library
    from ..vectors.filesample import FileSample


@cache
def captions() -> tuple[str, ...]:
    """The packaged bank captions, one per line."""
    text = resources.files("lbsearch.search").joinpath("bank.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@cache
def captions_sha() -> str:
    return hashlib.sha256("\n".join(captions()).encode()).hexdigest()[:16]


def expected_fingerprint(model_id: str, config: RelevanceConfig) -> str:
    """The bank fingerprint a modality indexed with `model_id` should have now."""
    return bank_fingerprint(model_id, captions_sha(), config.bank_k)


def text_bank(embedder: Embedder, modality: Modality, model_id: str, k: int) -> Bank:
    """The captions embedded with `modality`'s text tower, from the cache when there."""
    fingerprint = bank_fingerprint(model_id, captions_sha(), k)
    path = _cache_path(bank_fingerprint(model_id, captions_sha(), 0))
    vectors = _read_cached(path)
    if vectors is None:
        vectors = np.asarray(embedder.embed_texts(modality, list(captions())), dtype=np.float32)
        _write_cached(path, vectors)
    return Bank(fingerprint, vectors, k)


def install_banks(library: Library, embedder: Embedder, config: RelevanceConfig) -> None:
    """Give `library` the current bank of each indexed modality whose index has another, and
    (a writer) a sample of its own segments for example-file queries when one is due, or none
    when `file_sample` is 0: all at once, so an index that needs both is rebuilt in one pass."""
    change = file_sample_change(library, config)
    banks = {}
    for modality, state in library.modality_states().items():
        if not state.dim or not state.segment_count:
            continue
        wanted = expected_fingerprint(state.model_id, config)
        if library.bank_fingerprint(modality) != wanted:
            banks[modality] = text_bank(embedder, modality, state.model_id, config.bank_k)
    if banks or change.sample is not None or change.drop:
        library.use_references(banks, change.sample, drop_sample=change.drop)


def install_file_sample(library: Library, config: RelevanceConfig) -> str:
    """Draw the library's sample of its own segments when it is due (or drop it: `file_sample`
    0) and recompute every file bias with it (see `file_sample_due`). Returns why ("" when
    nothing changed)."""
    change = file_sample_change(library, config)
    if change.sample is None and not change.drop:
        return ""
    library.use_references({}, change.sample, drop_sample=change.drop)
    return change.why


@dataclass(frozen=True)
class SampleChange:
    """What a writer does to the library's file sample now: draw `sample`, `drop` the one it
    has (`file_sample = 0`), or nothing (neither); `why` says why."""

    sample: FileSample | None = None
    drop: bool = False
    why: str = ""


def file_sample_change(library: Library, config: RelevanceConfig) -> SampleChange:
    """What to do to the library's file sample now (a new one drawn here, not installed)."""
    why = file_sample_due(library, config)
    if not why:
        return SampleChange()
    if config.file_sample <= 0:
        return SampleChange(drop=True, why=why)
    sample = library.draw_file_sample(config.file_sample, config.bank_k)
    return SampleChange(sample, why=why) if sample is not None else SampleChange()


def file_sample_due(library: Library, config: RelevanceConfig) -> str:
    """Why a writer should draw the library's sample of its own segments, or drop it ("": it
    should not): it has none, or it is due (vectors.filesample: a new or re-embedded modality,
    grown `file_sample_growth` times, other settings), or `file_sample` is 0 and it has one. A
    reader never draws one (it uses what is saved)."""
    if not library.writable:
        return ""
    states = {m: s for m, s in library.modality_states().items() if s.dim and s.segment_count}
    if not states:
        return ""
    current = library.file_sample()
    if config.file_sample <= 0:
        return "file_sample is 0: no sample" if current is not None else ""
    total = sum(s.segment_count for s in states.values())
    models = {m.value: s.model_id for m, s in states.items()}
    size, k, growth = config.file_sample, config.bank_k, config.file_sample_growth
    return "no sample yet" if current is None else current.due(models, total, size, k, growth)


@dataclass(frozen=True)
class ModalityCalibration:
    """Null distributions of one modality: for text queries and for example files."""

    text: Calibration | None
    file: Calibration | None


def calibration(library: Library, modality: Modality, alpha: float) -> ModalityCalibration:
    moments = library.null_moments(modality) or {}
    return ModalityCalibration(
        Calibration.from_moments(moments.get("text"), alpha),
        Calibration.from_moments(moments.get("file"), alpha),
    )


def calibration_status(
    bank: str, model_id: str | None, segments: int, config: RelevanceConfig
) -> dict[str, object]:
    """`status --json`'s "calibration" of a modality: is its index file built with the bank
    of its model, the packaged captions and k as they are now (`lbsearch index` makes it so;
    until then queries rebuild the index in memory)."""
    wanted = expected_fingerprint(model_id, config) if model_id else None
    return {"current": bank == wanted or not segments, "bank": bank or None, "expected": wanted}


# ----------------------------------------------------------------------------- the cache


def _cache_path(key: str) -> Path:
    from ..embedder.cache import cache_dir

    return cache_dir() / "banks" / f"{key}.npy"


def _read_cached(path: Path) -> np.ndarray | None:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return vectors if vectors.ndim == 2 and len(vectors) == len(captions()) else None


def _write_cached(path: Path, vectors: np.ndarray) -> None:
    """Best effort (a cache): a read-only cache folder only costs embedding again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    except OSError:
        pass
