"""The reference environment: import shims, the version check, package versions."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from types import ModuleType


def install_shims() -> None:
    """Make the reference importable on current torch/torchvision without touching the venv."""
    import torchvision.transforms._functional_tensor as functional_tensor

    # pytorchvideo 0.1.5 imports the module under its pre-0.17 name.
    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)
    # peft's LoRA wrapping touches torch.distributed.tensor, which is not imported by default.
    import torch.distributed.tensor  # noqa: F401


def import_reference() -> ModuleType:
    """Import the ``languagebind`` package after checking that this is the reference venv."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    if (major, minor) >= (4, 46):
        sys.exit(
            f"transformers {transformers.__version__} found: run this script with the isolated "
            "reference venv described in its docstring (transformers 4.45.x)."
        )
    install_shims()
    import languagebind

    # The Huge config's deliberate vision_config / vision_config_dict conflict would otherwise log
    # one warning per key on every load; load_config checks the outcome instead.
    transformers.logging.set_verbosity_error()
    logging.getLogger("languagebind").setLevel(logging.ERROR)
    return languagebind


def package_versions() -> dict[str, str]:
    names = ["torch", "transformers", "peft", "languagebind", "tokenizers", "ftfy", "numpy"]
    return {name: importlib.metadata.version(name) for name in names}
