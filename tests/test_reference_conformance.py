"""Our encoders against outputs recorded from the original implementation (`languagebind` 0.1.0).

tools/make_reference_fixtures.py built each tiny model with the reference package, saved it in the
released layout (LoRA variants with unmerged old-peft factors) and recorded its text and modality
features for fixed inputs. Here the same files load through `load_encoder` as real checkpoints do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import lbsearch
from lbsearch.testing.tokenizer_files import write_tokenizer_files

FIXTURES = Path(__file__).parent / "fixtures" / "reference" / "encoders"
VARIANTS = sorted(p.name for p in FIXTURES.iterdir() if (p / "meta.json").is_file())
MIN_COSINE = 0.99999

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


def _cosines(ours: torch.Tensor, reference: np.ndarray) -> torch.Tensor:
    expected = torch.nn.functional.normalize(torch.from_numpy(reference).double(), dim=-1)
    return (ours.double() * expected).sum(dim=-1)


@pytest.mark.parametrize("name", VARIANTS)
def test_modality_features_match_the_reference(checkpoints: Path, name: str) -> None:
    meta, expected = _meta(name), np.load(FIXTURES / name / "expected.npz")
    pixels = np.random.RandomState(meta["pixels"]["seed"]).standard_normal(meta["pixels"]["shape"])
    encoder = lbsearch.load_encoder(
        meta["modality"], str(checkpoints / name), device="cpu", dtype="float32"
    )
    ours = encoder.encode(torch.from_numpy(pixels.astype(np.float32)))
    cosines = _cosines(ours, expected["image_features"])
    assert cosines.min() >= MIN_COSINE, cosines


@pytest.mark.parametrize("name", VARIANTS)
def test_text_features_and_tokens_match_the_reference(checkpoints: Path, name: str) -> None:
    meta, expected = _meta(name), np.load(FIXTURES / name / "expected.npz")
    text = lbsearch.load_text_encoder(str(checkpoints / name), device="cpu", dtype="float32")
    ids = text.tokenizer.full_ids(meta["texts"])
    np.testing.assert_array_equal(ids, expected["input_ids"])
    cosines = _cosines(text.encode_text(meta["texts"]), expected["text_features"])
    assert cosines.min() >= MIN_COSINE, cosines
