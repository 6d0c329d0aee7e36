"""Shared fixtures: a test never sees the developer's settings, library or model cache; tiny
random-weight checkpoints in the released layout, written once per run."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Tests never reach the hub: a missing model must fail fast, not retry a dead network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # as lbsearch.embedder.onnx sets it
# ONNX exports and tower identities go to a cache of this run, never the developer's.
os.environ["LBSEARCH_CACHE"] = tempfile.mkdtemp(prefix="lbsearch-test-cache-")
# Nor the developer's Hugging Face cache: a checkpoint downloaded there must not change what
# `lbsearch models` or a load reports. huggingface_hub reads HF_HOME once, when first imported,
# so it is set here, before any test imports it.
_HF_HOME = tempfile.mkdtemp(prefix="lbsearch-tests-hf-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = _HF_HOME
os.environ.pop("HF_HUB_CACHE", None)

from lbsearch.config import CONFIG_ENV  # noqa: E402 - after the environment above
from lbsearch.library import LIBRARY_ENV  # noqa: E402
from lbsearch.testing.checkpoints import (  # noqa: E402
    VARIANTS,
    write_tiny_checkpoint,
    write_tiny_config,
)

if TYPE_CHECKING:
    from lbsearch.catalog.store import Catalog

SAFETENSORS_VARIANTS = {"image", "depth"}


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test reads settings from a config file that does not exist (the packaged defaults
    alone) and writes its library, when it names none, into a fresh folder; never the
    developer's ~/.config/lbsearch/config.toml or data folder. Child processes inherit both."""
    home = tmp_path_factory.mktemp("lbsearch-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_ENV, str(home / "no-user-config.toml"))
        patch.setenv(LIBRARY_ENV, str(home / "library"))
        yield home


@pytest.fixture(autouse=True)
def lowered_priority(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """`lbsearch index` lowers its own priority ([index] nice): run in-process by a test, it
    would lower the whole test run's for good. In-process calls of os.nice are recorded here
    instead (each increment asked; the process stays at niceness 0 as far as they see)."""
    asked: list[int] = []

    def record(increment: int) -> int:
        asked.append(increment)
        return 0

    monkeypatch.setattr(os, "nice", record)
    return asked


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
    """A config.toml pointing every modality at its tiny checkpoint, on the CPU in float32."""
    path = tmp_path_factory.mktemp("config") / "config.toml"
    return write_tiny_config(path, tiny_dir, runtime={"device": "cpu", "dtype": "float32"})


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    """A new catalog with images, videos and audio registered (8-d vectors: tests/test_catalog's
    DIM, with its models img-1, vid-1 and aud-1)."""
    from lbsearch.catalog.store import Catalog
    from lbsearch.types import Modality

    cat = Catalog(tmp_path / "catalog.sqlite", create=True)
    cat.set_modality(Modality.IMAGE, "img-1", "1", 8)
    cat.set_modality(Modality.VIDEO, "vid-1", "1", 8)
    cat.set_modality(Modality.AUDIO, "aud-1", "1", 8)
    yield cat
    cat.close()
