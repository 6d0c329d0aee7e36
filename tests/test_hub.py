"""Checkpoints named by Hugging Face repo id: the standard cache, offline mode, clear failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LOAD = (
    "import lbsearch, sys; e = lbsearch.load_encoder('image', sys.argv[1], device='cpu', "
    "dtype='float32'); print(e.model_id, e.dim, tuple(e.encode_text(['a dog']).shape))"
)


def _hf_cache_with(tiny: Path, cache: Path, repo: str) -> None:
    """Lay a checkpoint out as huggingface_hub's cache does: blobs via snapshots/<rev>, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny, root / "snapshots" / revision)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def test_repo_id_loads_from_the_hf_cache_offline(tiny_dir: Path, tmp_path: Path) -> None:
    _hf_cache_with(tiny_dir / "image", tmp_path, "LanguageBind/LanguageBind_Image")
    done = _run([sys.executable, "-c", LOAD, "LanguageBind/LanguageBind_Image"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["LanguageBind/LanguageBind_Image", "16", "(1,", "16)"]


def test_offline_and_not_cached_says_how_to_get_weights(tmp_path: Path) -> None:
    done = _run(
        [sys.executable, "-m", "lbsearch", "embed", "--text", "x", "--modality", "depth"], tmp_path
    )
    assert done.returncode == 3
    assert (
        "LanguageBind/LanguageBind_Depth: checkpoint is not in the Hugging Face cache"
        in done.stderr
    )
    assert "HF_HUB_OFFLINE" in done.stderr
    assert "lbsearch pull LanguageBind/LanguageBind_Depth" in done.stderr
    assert "[models]" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("model", ["not a repo id", "./missing-dir"])
def test_bad_model_names_fail_clearly(tmp_path: Path, model: str) -> None:
    done = _run([sys.executable, "-c", LOAD, model], tmp_path)
    assert done.returncode != 0
    assert "ModelNotAvailableError" in done.stderr
