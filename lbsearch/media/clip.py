"""Cutting a span of a video or audio file into a new file ("clip"), frame-accurate.

The picture is stream-copied only when that is exact: a key frame is the frame shown at the
start, no packet before it in decode order belongs before it (open GOP), and the packets up to
the last frame before the end hold no frame past it (B-frames). Otherwise the span is decoded and
re-encoded (libx264, CRF 18, through PyAV's bundled FFmpeg). The sound is always decoded and
re-encoded (AAC in MP4/MOV/MKV) so it starts on the exact sample of the picture's first frame.

Times are seconds on the file's timeline as lbsearch indexes it (t = 0 is the video stream's
start; see avio.timeline_origin), so a search hit's span can be passed as it is. Any readable
file can be cut; indexing is not needed. The clip is written beside OUT under a temporary name
and renamed into place, so a failed cut never leaves half a file and never clobbers OUT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import LbsearchError, UsageError
from .avio import first_video_stream, open_container, timeline_origin
from .clip_audio import AudioSink
from .clip_plan import VideoPlan, plan_video
from .fileio import open_media

if TYPE_CHECKING:
    from av.container import InputContainer, OutputContainer

VIDEO_CRF = "18"  # visually lossless for x264; the clip is for watching, not archiving
VIDEO_PRESET = "veryfast"  # a 10 s 1080p span encodes in seconds on a laptop

# output suffix -> (video codec or None for sound-only containers, audio codec)
_CODECS: dict[str, tuple[str | None, str]] = {
    ".mp4": ("libx264", "aac"),
    ".m4v": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".m4a": (None, "aac"),
    ".wav": (None, "pcm_s16le"),
    ".flac": (None, "flac"),
    ".mp3": (None, "libmp3lame"),
    ".ogg": (None, "libopus"),
    ".opus": (None, "libopus"),
}


@dataclass(frozen=True)
class ClipResult:
    """What `cut` wrote: the span actually covered (after padding and clamping) and how."""

    path: Path
    start_s: float
    end_s: float
    video: str | None  # "copy", "libx264", ...; None when the clip has no picture
    audio: str | None  # the sound codec; None when the source has no sound


def output_suffixes() -> list[str]:
    return sorted(_CODECS)


def clip_path(folder: Path, source: Path, start_s: float, end_s: float, video: bool) -> Path:
    """A new file in `folder` named after the source's stem and the span (park_0040.0-0050.0.mp4),
    in the source's format where a clip can be written in it; never an existing file's name."""
    suffix = source.suffix.lower()
    if suffix not in _CODECS or (video and _CODECS[suffix][0] is None):
        suffix = ".mp4" if video else ".m4a"
    stem = f"{source.stem}_{start_s:06.1f}-{end_s:06.1f}"
    candidate, number = folder / f"{stem}{suffix}", 1
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = folder / f"{stem}-{number}{suffix}"
    return candidate


def cut(
    source: Path, start_s: float, end_s: float, out: Path, pad_s: float = 0.0, force: bool = False
) -> ClipResult:
    """Write [start_s - pad_s, end_s + pad_s] of `source` (clamped to the file) to `out`."""
    source, out = Path(source), Path(out)
    _check_request(source, start_s, end_s, out, pad_s, force)
    with open_media(source) as (handle, _):
        return cut_opened(handle, source, start_s, end_s, out, pad_s)


def cut_opened(
    handle: BinaryIO, source: Path, start_s: float, end_s: float, out: Path, pad_s: float = 0.0
) -> ClipResult:
    """`cut` from a file the caller opened and checked (the web service's clips open it through
    media.indexed); `source` names it in messages. UsageError for an end past the file's."""
    with open_container(handle, source) as box:
        duration = media_duration(box)
        _check_span(source, start_s, end_s, duration)
        start, end = max(0.0, start_s - pad_s), min(duration, end_s + pad_s)
        return _write_atomically(box, source, start, end, out)


def _check_request(
    source: Path, start_s: float, end_s: float, out: Path, pad_s: float, force: bool
) -> None:
    if start_s < 0:
        raise UsageError(f"--start {start_s:g} is before the file's start", "use --start 0 or more")
    if end_s <= start_s:
        raise UsageError(
            f"--end {end_s:g} is not after --start {start_s:g}", "give an end after the start"
        )
    if pad_s < 0:
        raise UsageError(f"--pad {pad_s:g} is negative", "give a padding of 0 seconds or more")
    if out.suffix.lower() not in _CODECS:
        raise UsageError(
            f"{out}: cannot tell which kind of file to write from the suffix {out.suffix!r}",
            f"end the output name with one of {', '.join(output_suffixes())}",
        )
    if out.resolve() == source.resolve():
        raise UsageError(f"{out} is the file being cut", "write the clip to another file")
    if (out.exists() or out.is_symlink()) and not force:
        raise UsageError(f"{out} already exists", "pass --force to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} is not a folder", "create it first, or write elsewhere")


def _check_span(source: Path, start_s: float, end_s: float, duration: float) -> None:
    if end_s > duration + 1e-3:  # a millisecond for the float round trip of a hit's end
        raise UsageError(
            f"--end {end_s:g} is past the end of {source} ({duration:.3f} s long)",
            f"give an end of at most {duration:.3f}",
        )


def media_duration(box: InputContainer) -> float:
    """Seconds from the timeline's origin to the end of its longest picture or sound stream."""
    origin = timeline_origin(box)
    ends = []
    for stream in [*box.streams.video, *box.streams.audio]:
        if stream.duration and stream.time_base:
            begin = stream.start_time or 0
            ends.append(float((begin + stream.duration) * stream.time_base) - origin)
    if ends:
        return max(ends)
    if box.duration:
        return float(box.duration) / 1_000_000
    raise LbsearchError("the file does not say how long it is", "it cannot be cut")


def _write_atomically(
    box: InputContainer, source: Path, start: float, end: float, out: Path
) -> ClipResult:
    import av

    part = out.with_name(f".{out.stem}.{os.getpid()}.part{out.suffix}")
    try:
        with av.open(str(part), "w") as sink:
            result = _write(box, sink, source, start, end, out)
        part.replace(out)
    except av.FFmpegError as exc:
        raise LbsearchError(
            f"{source}: cutting {start:.3f}-{end:.3f} s into {out} failed ({exc})",
            "try another output suffix (.mkv accepts the most codecs)",
        ) from None
    finally:
        part.unlink(missing_ok=True)
    return result


def _write(
    box: InputContainer, sink: OutputContainer, source: Path, start: float, end: float, out: Path
) -> ClipResult:
    video_codec, audio_codec = _CODECS[out.suffix.lower()]
    origin = timeline_origin(box)
    vin = first_video_stream(box) if video_codec else None
    ain = box.streams.audio[0] if box.streams.audio else None
    if vin is None and ain is None:
        raise LbsearchError(
            f"{source} has no picture or sound to cut", "pick a video or audio file"
        )
    sinks: list[Any] = []
    plan = None
    if vin is not None:
        plan = plan_video(box, vin, origin, start, end)
        if plan.method == "copy":  # the clip starts on the key frame shown at `start`
            clip_start = float(plan.start_pts * vin.time_base) - origin
            sinks.append(_CopySink(sink, vin, plan))
        else:
            clip_start = start
            sinks.append(_EncodeSink(sink, vin, plan, video_codec or "libx264"))
        box.seek(plan.seek_pts, stream=vin, backward=True)
    elif ain is not None:  # sound only: seek a little early so the decoder has settled
        clip_start = start
        box.seek(round((origin + max(0.0, start - 0.5)) / float(ain.time_base or 1)), stream=ain)
    if ain is not None:
        sinks.append(AudioSink(sink, ain, audio_codec, origin, clip_start, end))
    by_stream = {id(s.stream): s for s in sinks}
    for packet in box.demux(*[s.stream for s in sinks]):
        by_stream[id(packet.stream)].feed(packet)
        if all(s.done for s in sinks):
            break
    for s in sinks:
        s.close()
    method = None if plan is None else ("copy" if plan.method == "copy" else video_codec)
    return ClipResult(out, clip_start, end, method, audio_codec if ain is not None else None)


class _CopySink:
    """Copies the planned packets, shifted so the key frame at the start is at t = 0."""

    def __init__(self, sink: OutputContainer, vin: Any, plan: VideoPlan) -> None:
        self.stream, self._sink = vin, sink
        self._left, self._shift = plan.packets, plan.start_pts
        self._out = sink.add_stream_from_template(vin)
        self.done = False

    def feed(self, packet: Any) -> None:
        if self.done or packet.size == 0:
            return
        packet.pts -= self._shift
        if packet.dts is not None:
            packet.dts -= self._shift
        packet.stream = self._out
        self._sink.mux(packet)
        self._left -= 1
        self.done = self._left == 0

    def close(self) -> None:
        return


class _EncodeSink:
    """Decodes from the key frame before the start and encodes the frames of the span.

    The first frame written is the one shown at the start time (the last frame at or before it),
    placed at t = 0; frames at or after the end are dropped."""

    def __init__(self, sink: OutputContainer, vin: Any, plan: VideoPlan, codec: str) -> None:
        self.stream, self._sink = vin, sink
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        out: Any = sink.add_stream(codec, rate=rate)
        cc = vin.codec_context
        out.width, out.height = cc.width // 2 * 2, cc.height // 2 * 2  # 4:2:0 needs even sizes
        out.pix_fmt = "yuv420p"
        out.codec_context.time_base = vin.time_base
        if codec.startswith("libx264"):
            out.options = {"crf": VIDEO_CRF, "preset": VIDEO_PRESET}
        self._out = out
        self._tb, self._base, self._end = vin.time_base, plan.start_pts, plan.end_pts
        self._pending: Any = None
        self._first = True
        self.done = False

    def feed(self, packet: Any) -> None:
        if not self.done:
            for frame in packet.decode():
                self._take(frame)

    def _take(self, frame: Any) -> None:
        pts = frame.pts
        if pts is None or self.done:
            return
        if pts <= self._base:
            self._pending = frame  # the latest frame at or before the start is the first
            return
        self._flush_pending()
        if pts >= self._end:
            self.done = True
            return
        self._encode(frame, pts)

    def _flush_pending(self) -> None:
        if self._pending is not None:
            self._encode(self._pending, self._base)
            self._pending = None

    def _encode(self, frame: Any, pts: int) -> None:
        if self._first and frame.rotation:  # keep a phone video's display rotation
            self._out.set_display_rotation(frame.rotation)
        self._first = False
        if frame.width != self._out.width or frame.height != self._out.height:
            frame = frame.reformat(width=self._out.width, height=self._out.height)
        frame.pts, frame.time_base = pts - self._base, self._tb
        self._sink.mux(self._out.encode(frame))

    def close(self) -> None:
        self._flush_pending()  # the span ends before any later frame decoded
        self._sink.mux(self._out.encode(None))
