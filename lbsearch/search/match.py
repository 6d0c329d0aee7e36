"""What a query asks of a file's time windows, and what it gets back: the match modes
(`--match`), the streams each searches, the scales scores are fused on, and a `Moment`.

Plain records without numpy, so the query language (and `lbsearch query` asking a running
server) can use them without loading the numbers behind them (moments.py: fusion and merging).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..types import Modality, parse_named

MOMENT_FIELDS = (
    "start_s",
    "end_s",
    "relevance",
    "picture_score",
    "sound_score",
    "picture_relevance",
    "sound_relevance",
)


class Match(StrEnum):
    """Which stream of a window must match (`--match`)."""

    ANY = "any"
    BOTH = "both"
    PICTURE = "picture"
    SOUND = "sound"

    @classmethod
    def parse(cls, name: str) -> Match:
        return parse_named(cls, name, "match mode")


TIMED = (Modality.VIDEO, Modality.AUDIO)  # the streams with time windows


def stream_modalities(mode: Match) -> tuple[Modality, ...] | None:
    """The modalities a match mode searches (None: every one): `picture` leaves out sound
    windows, `sound` keeps only them, `both` needs a video's two streams."""
    if mode is Match.SOUND:
        return (Modality.AUDIO,)
    if mode is Match.BOTH:
        return TIMED
    if mode is Match.PICTURE:
        return tuple(m for m in Modality if m is not Modality.AUDIO)
    return None


@dataclass(frozen=True)
class Scale:
    """What a unit of score means on one scale: how far below a moment's best a window may fall
    and still belong to it, and the softness of `both`."""

    margin: float
    softness: float


RELEVANCE_SCALE = Scale(margin=1.0, softness=0.5)  # standard deviations of the null
RAW_SCALE = Scale(margin=0.02, softness=0.01)  # cosine: related pairs differ by a few hundredths


@dataclass(frozen=True)
class Moment:
    """A span of one file. The scores are those of its best window (the highest fused value):
    `*_score` raw cosines, `*_relevance` calibrated; None for a stream the window lacks (or
    without a calibration). `relevance` is the fused relevance of that window."""

    start_s: float
    end_s: float
    relevance: float | None
    picture_score: float | None
    sound_score: float | None
    picture_relevance: float | None
    sound_relevance: float | None
    best_start_s: float
    best_end_s: float

    def matched(self) -> str:
        """Which stream matched in the best window: "picture", "sound" or "both" (each stream
        within the scale's margin of the better one; relevances where both have one)."""
        pair: tuple[float | None, float | None]
        if self.picture_relevance is not None and self.sound_relevance is not None:
            pair, margin = (self.picture_relevance, self.sound_relevance), RELEVANCE_SCALE.margin
        else:
            pair, margin = (self.picture_score, self.sound_score), RAW_SCALE.margin
        picture, sound = pair
        if picture is None or sound is None:
            return "sound" if picture is None else "picture"
        if abs(picture - sound) <= margin:
            return "both"
        return "picture" if picture > sound else "sound"

    def to_json(self) -> dict[str, float | None]:
        """The fields every front end shows (issue 18, "Precisely")."""
        keys = MOMENT_FIELDS
        return {key: getattr(self, key) for key in keys}
