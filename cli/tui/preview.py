"""What the preview pane shows for a hit: a picture (if any) and facts about the file.

No UI here. The file is read through `lbsearch.media.preview` (its guards against FIFOs,
devices, huge pictures; the video decoder's frame seeking), once per (path, modality, frame
time): `read_media`. What belongs to the hit (modality, score, segment) is added afresh for each
row by `compose_preview`, so two rows of one file never show each other's score.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lbsearch.media.preview import PICTURE_MAX, MediaView, describe
from lbsearch.types import Modality

if TYPE_CHECKING:
    from PIL import Image

    from lbsearch.search import Hit

PATH_WIDTH = 70
MIN_PATH_WIDTH = 12
TIMED = (Modality.VIDEO, Modality.AUDIO)
MediaKey = tuple[str, Modality, float]


@dataclass(frozen=True)
class Preview:
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    picture: Image.Image | None = field(default=None, compare=False)
    note: str = ""


@dataclass(frozen=True)
class MediaRead:
    """What reading the file gave: its view, or why it could not be read."""

    view: MediaView | None
    error: str = ""


def media_key(hit: Hit) -> MediaKey:
    """What the media part of a preview depends on: a video's frame time, nothing else's."""
    return (hit.path, hit.modality, hit.start_s if hit.modality is Modality.VIDEO else 0.0)


def read_media(hit: Hit) -> MediaRead:
    try:
        return MediaRead(describe(hit.path, hit.modality, hit.start_s, PICTURE_MAX))
    except Exception as exc:  # unreadable, gone, or not what the catalog says: say so, go on
        return MediaRead(None, getattr(exc, "detail", None) or str(exc))


def build_preview(hit: Hit) -> Preview:
    """The preview of `hit`; a file that cannot be read gives a preview saying why."""
    return compose_preview(hit, read_media(hit))


def compose_preview(hit: Hit, read: MediaRead) -> Preview:
    path = Path(hit.path)
    facts = [("modality", hit.modality.value), ("score", f"{hit.score:.4f}")]
    if hit.relevance is not None:
        facts.append(("relevance", f"{hit.relevance:.2f}" + (" (weak)" if hit.weak else "")))
    if hit.modality in TIMED:
        facts.append(("segment", span_text(hit.start_s, hit.end_s)))
    facts += moment_facts(hit)
    facts += _file_facts(path, hit)
    if read.view is None:
        return Preview(path.name, tuple(facts), None, f"cannot read: {read.error}")
    media = list(read.view.facts)
    if hit.duration_s is not None:  # the catalog's duration is already shown
        media = [(key, value) for key, value in media if key != "length"]
    return Preview(path.name, tuple(facts + media), read.view.picture)


def moment_facts(hit: Hit) -> list[tuple[str, str]]:
    """The best moment's span and each stream's score in its best window (a video shows both:
    picture and sound), as raw cosine and relevance."""
    if not hit.moments:
        return []
    best = hit.moments[0]
    facts = [("moment", span_text(best.start_s, best.end_s))]
    for name, score, relevance in (
        ("picture", best.picture_score, best.picture_relevance),
        ("sound", best.sound_score, best.sound_relevance),
    ):
        if score is not None:
            extra = "" if relevance is None else f" (relevance {relevance:.2f})"
            facts.append((name, f"{score:.4f}{extra}"))
    return facts


def _file_facts(path: Path, hit: Hit) -> list[tuple[str, str]]:
    facts = [("size", human_size(hit.size))]
    if hit.mtime:
        when = dt.datetime.fromtimestamp(hit.mtime).strftime("%Y-%m-%d %H:%M")
        facts.append(("modified", when))
    if hit.duration_s is not None:
        facts.append(("duration", clock(hit.duration_s)))
    facts.append(("folder", display_path(str(path.parent), 40)))
    return facts


def display_path(path: str, width: int = PATH_WIDTH) -> str:
    """`path` with the home folder as ~, at most `width` characters: shortened in the middle of
    its folders, never losing the file name (a name too long itself is cut in its middle)."""
    home = str(Path.home())
    if home not in ("", "/") and path.startswith(home + os.sep):
        path = "~" + path[len(home) :]
    width = max(width, MIN_PATH_WIDTH)
    if len(path) <= width:
        return path
    folder, sep, name = path.rpartition(os.sep)
    room = width - len(name) - len(sep) - 1  # what is left of the folder beside "…"
    if not sep or room < 0:
        return _cut_middle(name, width)
    if room < 4:
        return "…" + sep + name
    tail = room * 2 // 3  # the nearest folders say more than the first ones
    return folder[: room - tail] + "…" + (folder[-tail:] if tail else "") + sep + name


def _cut_middle(name: str, width: int) -> str:
    if len(name) <= width:
        return name
    _, dot, ext = name.rpartition(".")
    ext = dot + ext if dot and len(ext) < 6 else ""
    body = name[: len(name) - len(ext)]
    room = width - len(ext) - 1
    head = (room + 1) // 2
    return body[:head] + "…" + body[len(body) - (room - head) :] + ext


def clock(seconds: float) -> str:
    """mm:ss (h:mm:ss past an hour)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def span_text(start_s: float, end_s: float) -> str:
    return f"{clock(start_s)}-{clock(end_s)}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
