"""Shared fixtures: tiny random-weight checkpoints in the released layout, written once per run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never reach the hub: a missing model must fail fast, not retry a dead network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# ONNX exports and tower identities go to a cache of this run, never the developer's.
os.environ["LBSEARCH_CACHE"] = tempfile.mkdtemp(prefix="lbsearch-test-cache-")

from lbsearch.testing.checkpoints import VARIANTS, write_tiny_checkpoint

SAFETENSORS_VARIANTS = {"image", "depth"}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with one tiny checkpoint per released variant (sub-directory = variant name)."""
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    for name in VARIANTS:
        fmt = "safetensors" if name in SAFETENSORS_VARIANTS else "bin"
        write_tiny_checkpoint(root / name, name, weights_format=fmt)
    return root


@pytest.fixture(scope="session")
def tiny_config(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config.toml pointing every modality at its tiny checkpoint."""
    path = tmp_path_factory.mktemp("config") / "config.toml"
    models = {
        "image": "image",
        "video": "video_ft",
        "audio": "audio_ft",
        "depth": "depth",
        "thermal": "thermal",
    }
    lines = ["[models]"] + [f'{m} = "{tiny_dir / v}"' for m, v in models.items()]
    lines += ["[runtime]", 'device = "cpu"', 'dtype = "float32"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
