"""Plain typed values passed between lbsearch's modules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

Named = TypeVar("Named", bound=StrEnum)


def parse_named(kind: type[Named], name: str, what: str) -> Named:
    """The member of `kind` called `name` (any case, spaces around), or a UsageError that
    names `what` was asked for and lists the choices."""
    from .errors import UsageError

    try:
        return kind(name.strip().lower())
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise UsageError(f"unknown {what} {name!r}", f"use one of: {known}") from None


class Modality(StrEnum):
    """A kind of media with its own LanguageBind tower. Text is not one: every tower has it."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DEPTH = "depth"
    THERMAL = "thermal"

    @classmethod
    def parse(cls, name: str) -> Modality:
        return parse_named(cls, name, "modality")


@dataclass(frozen=True)
class MediaSpec:
    """What a checkpoint needs its input to look like; media decoding produces exactly this.

    Derived from the checkpoint's config.json (`CheckpointSpec.media_spec`), so a decoder never
    guesses sizes: image/depth/thermal (3, S, S), video (3, frames, S, S), audio (3, mel_bins,
    target_length).
    """

    modality: Modality
    image_size: int = 224
    num_frames: int = 8
    num_mel_bins: int = 112
    target_length: int = 1036
    sample_rate: int = 16000
    audio_mean: float = -4.2677393
    audio_std: float = 4.5689974
    max_depth: float = 10.0


@dataclass(frozen=True)
class Segment:
    """One unit the encoder embeds: a whole image, or a time window of a video or audio file.

    `pixels` has the encoder's per-item input shape (MediaSpec) and is float32 on the CPU.
    Images have start_s = end_s = 0.
    """

    path: str
    modality: Modality
    start_s: float
    end_s: float
    pixels: torch.Tensor
