"""A checkpoint resolved to a folder and its parsed config.json: no torch, no weights read.

The cold query path (ONNX Runtime) and decoding start from this alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .hub import is_local_reference, resolve_checkpoint, weights_file
from .spec import CheckpointSpec, read_spec


@dataclass(frozen=True)
class Checkpoint:
    """A resolved checkpoint: its id as the user named it, its directory and parsed config."""

    model_id: str
    directory: Path
    spec: CheckpointSpec

    @property
    def weights(self) -> Path:
        return weights_file(self.directory)


def model_id_for(model: str) -> str:
    """How a library records a checkpoint: a repo id as given, a directory fully resolved (so
    `./ckpt` and `/data/ckpt` are one model). Reads nothing."""
    return str(Path(model).expanduser().resolve()) if is_local_reference(model) else model


def open_checkpoint(model: str) -> Checkpoint:
    directory = resolve_checkpoint(model)
    return Checkpoint(model_id_for(model), directory, read_spec(directory / "config.json"))
