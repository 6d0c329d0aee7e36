"""Our encoders against outputs recorded from the original implementation (`languagebind` 0.1.0).

tools/make_reference_fixtures.py built each tiny model with the reference package, saved it in the
released layout (LoRA variants with unmerged old-peft factors) and recorded its text and modality
features for fixed inputs. Here the same files load through `load_encoder` as real checkpoints do,
and through the ONNX Runtime back-end (exported from them into the test run's cache).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import lbsearch
from lbsearch.embedder.onnx import load_onnx_media_tower, load_onnx_text_tower
from lbsearch.models.checkpoint import open_checkpoint
from lbsearch.testing.tokenizer_files import write_tokenizer_files
from lbsearch.types import Modality

FIXTURES = Path(__file__).parent / "fixtures" / "reference" / "encoders"
VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "meta.json").is_file())
MIN_COSINE = 0.99999
BACKENDS = ["torch", "onnxruntime"]  # ONNX Runtime float32 must give the reference's vectors too
# Each ONNX case exports a tower (3-4 s): the default run keeps one variant per test, and
# `pytest -m slow` (CI runs it) the others.
CASES = [
    pytest.param(name, backend, marks=[pytest.mark.slow] if backend == "onnxruntime" and i else [])
    for i, name in enumerate(VARIANTS)
    for backend in BACKENDS
]

pytestmark = pytest.mark.reference


def test_every_released_variant_has_a_fixture() -> None:
    from lbsearch.testing.checkpoints import VARIANTS as RELEASED

    assert set(VARIANTS) == set(RELEASED)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture models plus the tokenizer files (kept once in the package, not per fixture)."""
    root = tmp_path_factory.mktemp("reference")
    for name in VARIANTS:
        shutil.copytree(FIXTURES / name, root / name, ignore=shutil.ignore_patterns("*.npz"))
        write_tokenizer_files(root / name)
    return root


def _meta(name: str) -> dict:
    return json.loads((FIXTURES / name / "meta.json").read_text(encoding="utf-8"))


def _cosines(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    expected = reference.astype(np.float64)
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    return (np.asarray(ours, dtype=np.float64) * expected).sum(axis=-1)


def _encode_media(backend: str, directory: Path, modality: str, pixels: np.ndarray) -> np.ndarray:
    if backend == "onnxruntime":
        tower = load_onnx_media_tower(open_checkpoint(str(directory)), Modality.parse(modality))
        return tower.encode(pixels)
    encoder = lbsearch.load_encoder(modality, str(directory), device="cpu", dtype="float32")
    return encoder.encode(torch.from_numpy(pixels)).numpy()


def _encode_text(backend: str, directory: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids as the tokenizer gives them (77 per text) and the text vectors."""
    if backend == "onnxruntime":
        tower = load_onnx_text_tower(open_checkpoint(str(directory)))
        return tower.tokenizer.full_ids(texts), tower.encode(texts)
    encoder = lbsearch.load_text_encoder(str(directory), device="cpu", dtype="float32")
    return encoder.tokenizer.full_ids(texts), encoder.encode_text(texts).numpy()


@pytest.mark.parametrize(("name", "backend"), CASES)
def test_modality_features_match_the_reference(checkpoints: Path, name: str, backend: str) -> None:
    meta, expected = _meta(name), np.load(FIXTURES / name / "expected.npz")
    pixels = np.random.RandomState(meta["pixels"]["seed"]).standard_normal(meta["pixels"]["shape"])
    ours = _encode_media(backend, checkpoints / name, meta["modality"], pixels.astype(np.float32))
    cosines = _cosines(ours, expected["image_features"])
    assert cosines.min() >= MIN_COSINE, cosines


@pytest.mark.parametrize(("name", "backend"), CASES)
def test_text_features_and_tokens_match_the_reference(
    checkpoints: Path, name: str, backend: str
) -> None:
    meta, expected = _meta(name), np.load(FIXTURES / name / "expected.npz")
    ids, vectors = _encode_text(backend, checkpoints / name, meta["texts"])
    np.testing.assert_array_equal(ids, expected["input_ids"])
    cosines = _cosines(vectors, expected["text_features"])
    assert cosines.min() >= MIN_COSINE, cosines
