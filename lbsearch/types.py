"""Plain typed values passed between lbsearch's modules."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    """A kind of media with its own LanguageBind tower. Text is not one: every tower has it."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DEPTH = "depth"
    THERMAL = "thermal"

    @classmethod
    def parse(cls, name: str) -> Modality:
        from .errors import UsageError

        try:
            return cls(name.strip().lower())
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise UsageError(f"unknown modality {name!r}", f"use one of: {known}") from None
