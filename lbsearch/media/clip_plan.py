"""Deciding how to cut a video's picture: stream copy when that is frame-exact, else re-encode.

Only packets are read here (no decoding), from the key frame at or before the start until well
past the end, so the decision costs a demux of the span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from av.container import InputContainer

REORDER_LIMIT = 16  # H.264/HEVC reorder at most 16 frames: past that no earlier frame can follow


@dataclass(frozen=True)
class VideoPlan:
    """`copy`: the first `packets` packets from the key frame at `seek_pts` are the clip, shifted
    by `seek_pts`; `encode`: decode from the key frame before `start_pts`, keep [start, end)."""

    method: str  # "copy" or "encode"
    seek_pts: int  # stream pts to seek to (backward) before demuxing
    start_pts: int  # stream pts of the clip's t = 0
    end_pts: int  # frames at or after this pts are not in the clip
    packets: int  # copy: how many packets, in decode order, from the seek point


def plan_video(box: InputContainer, vin: Any, origin: float, start: float, end: float) -> VideoPlan:
    """Plan the picture of [start, end) (timeline seconds); leaves `box` at an unknown position."""
    tb = float(vin.time_base)
    start_pts, end_pts = round((origin + start) / tb), round((origin + end) / tb)
    encode = VideoPlan("encode", start_pts, start_pts, end_pts, 0)
    if not tb:
        return encode
    box.seek(start_pts, stream=vin, backward=True)
    scanned = _scan(box, vin, end_pts)
    count = exact_copy_length(scanned, start_pts, end_pts)
    if count == 0:
        return encode

    first = int(scanned[0][0] or 0)  # exact_copy_length refused packets without pts
    return VideoPlan("copy", first, first, end_pts, count)


def _scan(box: InputContainer, vin: Any, end_pts: int) -> list[tuple[int | None, bool]]:
    """(pts, key frame?) of the video packets in decode order from the current position."""
    scanned: list[tuple[int | None, bool]] = []
    beyond = 0
    for packet in box.demux(vin):
        if packet.size == 0:
            continue
        scanned.append((packet.pts, bool(packet.is_keyframe)))
        beyond = beyond + 1 if packet.pts is not None and packet.pts >= end_pts else 0
        if beyond > REORDER_LIMIT:
            break
    return scanned


def exact_copy_length(
    packets: Sequence[tuple[int | None, bool]], start_pts: int, end_pts: int
) -> int:
    """How many packets (decode order) make exactly the frames shown over [start, end), or 0.

    Exact means: the first packet is a key frame shown at the start (at or before it, and the
    next frame after it); no packet up to the last frame before the end shows a frame before the
    key frame (an open GOP) or at/after the end (a B-frame's forward reference)."""
    if not packets or not packets[0][1] or any(pts is None for pts, _ in packets):
        return 0
    times = [int(pts) for pts, _ in packets if pts is not None]
    if len(set(times)) != len(times) or times[0] > start_pts:
        return 0
    inside = [i for i, pts in enumerate(times) if pts < end_pts]
    prefix = times[: inside[-1] + 1]
    if min(prefix) < times[0] or max(prefix) >= end_pts:
        return 0
    later = sorted(prefix)[1:2]
    if later and later[0] <= start_pts:  # another frame, not the key frame, is shown at start
        return 0
    return len(prefix)
