"""Video: time windows of `video.segment_seconds`, each encoded from `num_frames` frames.

Frame numbering follows decord (the reference's decoder): frames are the stream's packets in
presentation (pts) order, counted by demuxing without decoding. A window's frames are
floor(linspace(first, last, num_frames)) of its frame indices, so a video no longer than one
window gets exactly the reference's floor(linspace(0, N-1, num_frames)).

Only the chosen frames are converted to RGB; between far-apart targets the reader seeks to the
keyframe before the next target instead of decoding everything in between.
The container's display rotation (phone videos) is applied to the frames, as decord does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ..config import Config
from ..types import MediaSpec, Modality, Segment
from .avio import decoded_frames, first_video_stream, open_container
from .reasons import media_error
from .transforms import frames_to_input

if TYPE_CHECKING:
    from av.container import InputContainer

SKIP_NONREF = True  # let the decoder drop non-reference frames that are not wanted
SEEK_MIN_GAP = 12  # seek only when it skips at least this many frames (a seek costs a few)
_EPS = 1e-6  # frame times are floats from pts * time_base; keep exact boundaries stable


@dataclass(frozen=True)
class FrameIndex:
    """Every frame of a video stream in presentation order, from one demux pass."""

    pts: np.ndarray  # int64 presentation timestamps, sorted
    keyframe: np.ndarray  # bool, same order
    times: np.ndarray  # float64 seconds from the first frame
    duration: float  # seconds from the first frame to the end of the last
    exact: bool  # pts are unique and present: frames can be matched by pts (and seeked)


@dataclass(frozen=True)
class Window:
    start_s: float
    end_s: float
    indices: tuple[int, ...]


def plan_windows(
    times: np.ndarray, duration: float, segment_s: float, max_segments: int, num_frames: int
) -> list[Window]:
    """Cut frames (given their times) into windows and pick each window's frame indices.

    floor(duration / segment_s) windows (at least one); the last absorbs the remainder, so a
    final short window merges into the previous one. Beyond `max_segments` windows, that many are
    kept, spread evenly. Windows without any frame (a gap in a variable-rate stream) are skipped.
    """
    count = max(1, int(duration / segment_s + _EPS)) if segment_s > 0 else 1
    owner = (
        np.minimum((times / segment_s + _EPS).astype(np.int64), count - 1) if count > 1 else None
    )
    chosen: list[int] = list(range(count))
    if 0 < max_segments < count:
        chosen = sorted(set(np.linspace(0, count - 1, max_segments, dtype=np.int64).tolist()))
    windows = []
    for k in chosen:
        members = np.flatnonzero(owner == k) if owner is not None else np.arange(len(times))
        if members.size == 0:
            continue
        first, last = int(members[0]), int(members[-1])
        picks = np.linspace(first, last, num_frames, dtype=int)  # truncation, as the reference
        end = duration if k == count - 1 else (k + 1) * segment_s
        # microseconds: timestamps sums like 11.999999999999998 are noise, not information
        start = round(k * segment_s, 6)
        windows.append(Window(start, round(float(end), 6), tuple(int(i) for i in picks)))
    return windows


def video_windows(path: Path, spec: MediaSpec, cfg: Config) -> list[Window]:
    """The windows (times and frame indices) `decode` would use, from a demux pass only."""
    from .fileio import open_media

    with open_media(path, cfg.media.max_file_bytes) as (handle, _):
        return _plan(handle, path, spec, cfg)[1]


def _plan(
    handle: BinaryIO, path: Path, spec: MediaSpec, cfg: Config
) -> tuple[FrameIndex, list[Window]]:
    with open_container(handle, path) as box:  # demux only, to number the frames
        stream = _video_stream(box, path)
        _check_frame_size(stream, path, cfg.media.max_image_pixels)
        index = build_index(box, stream, path)
    windows = plan_windows(
        index.times,
        index.duration,
        cfg.video.segment_seconds,
        cfg.video.max_segments,
        spec.num_frames,
    )
    return index, windows


def window_spans(handle: BinaryIO, path: Path, cfg: Config) -> list[tuple[float, float]] | None:
    """(start, end) of each window `decode_video` gives for this file (the frame choice does not
    move them), or None if the file has no video stream; a demux pass, nothing is decoded."""
    with open_container(handle, path) as box:
        stream = first_video_stream(box)
        if stream is None:
            return None
        index = build_index(box, stream, path)
    video = cfg.video
    windows = plan_windows(
        index.times, index.duration, video.segment_seconds, video.max_segments, 8
    )
    return [(w.start_s, w.end_s) for w in windows]


def decode_video(
    handle: BinaryIO,
    path: Path,
    spec: MediaSpec,
    cfg: Config,
    keep: Callable[[Window], bool] | None = None,
) -> Iterator[Segment]:
    """The windows of one video file as (3, num_frames, S, S) segments, yielded one by one (a
    long video never holds all its windows); with `keep`, only the windows it accepts, planned
    as for the whole file (a part of a long video: ranges.py), and no window is then no error."""
    index, windows = _plan(handle, path, spec, cfg)  # pass 1: number the frames
    if keep is not None:
        windows = [w for w in windows if keep(w)]
        if not windows:
            return
    count = 0
    with open_container(handle, path) as box:  # pass 2: decode the chosen frames
        stream = _video_stream(box, path)
        stream.thread_type = "AUTO"  # frame + slice threads
        stream.codec_context.thread_count = max(0, cfg.video.decode_threads)
        targets = [i for w in windows for i in w.indices] if SKIP_NONREF else []
        reader = FrameReader(box, stream, index, targets)
        for w in windows:
            frames = reader.get(w.indices)
            if frames is None:
                break
            if len({f.shape for f in frames}) > 1:
                raise media_error(path, "corrupt", "the frame size changes inside a window")
            pixels = frames_to_input(np.stack(frames), spec.image_size)
            count += 1
            yield Segment(str(path), Modality.VIDEO, w.start_s, w.end_s, pixels)
    if not count and keep is None:
        raise media_error(path, "no_video_frames", "no video frame could be decoded")


def _video_stream(box: InputContainer, path: Path) -> Any:
    stream = first_video_stream(box)
    if stream is None:
        raise media_error(path, "no_video_frames", "the file has no video stream")
    return stream


def _check_frame_size(stream: Any, path: Path, max_pixels: int) -> None:
    """Refuse absurd frame sizes before decoding: 8 RGB frames of them must fit in memory."""
    width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
    if max_pixels > 0 and width * height > max_pixels:
        detail = f"{width}x{height} video frames > limit {max_pixels} pixels"
        raise media_error(path, "decompression_bomb", detail)


def build_index(box: InputContainer, stream: Any, path: Path) -> FrameIndex:
    """Demux (no decoding) every packet of `stream`: count, timestamps and keyframes."""
    import av

    pts: list[int | None] = []
    keys: list[bool] = []
    last_duration = 0
    try:
        for packet in box.demux(stream):
            if packet.size == 0:  # the flush packet at EOF
                continue
            pts.append(packet.pts if packet.pts is not None else packet.dts)
            keys.append(bool(packet.is_keyframe))
            last_duration = max(last_duration, int(packet.duration or 0))
    except av.FFmpegError:
        pass  # a damaged tail: index what came before it
    if not pts:
        raise media_error(path, "no_video_frames", "the video stream has no packets")
    return _make_index(pts, keys, last_duration, stream)


def _make_index(pts: list[int | None], keys: list[bool], last_dur: int, stream: Any) -> FrameIndex:
    tb = float(stream.time_base) if stream.time_base else 0.0
    exact = tb > 0 and None not in pts and len(set(pts)) == len(pts)
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    if exact:
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        pts_arr = np.asarray(pts, dtype=np.int64)[order]
        key_arr = np.asarray(keys, dtype=bool)[order]
        times = (pts_arr - pts_arr[0]).astype(np.float64) * tb
        step = last_dur * tb if last_dur > 0 else 1.0 / rate
    else:  # no usable timestamps: number frames in output order at the nominal rate
        pts_arr = np.arange(len(pts), dtype=np.int64)
        key_arr = np.zeros(len(pts), dtype=bool)
        times = pts_arr / rate
        step = 1.0 / rate
    return FrameIndex(pts_arr, key_arr, times, float(times[-1] + step), exact)


class FrameReader:
    """Hands out RGB frames by presentation index, for ascending requests.

    Decodes forward, converting only requested frames; seeks to the keyframe before a target when
    that skips enough frames. A target that never decodes (damaged packet) is served by the next
    decoded frame, or at the end of the stream by the last one, as decord's nearest frame would be.
    """

    def __init__(
        self, box: InputContainer, stream: Any, index: FrameIndex, targets: Sequence[int] = ()
    ) -> None:
        self._box, self._stream, self._index = box, stream, index
        self._pts_to_idx = {int(p): i for i, p in enumerate(index.pts)} if index.exact else {}
        self._keys = np.flatnonzero(index.keyframe)
        self._targets = frozenset(targets) if index.exact else frozenset()
        self._skipping = False
        self._frames = decoded_frames(box, stream, self._choose_skip)
        self._pos = -1  # presentation index of the last frame taken from the decoder
        self._held: tuple[int, Any] | None = None  # that frame, kept to serve missing targets
        self._cache: dict[int, np.ndarray] = {}
        # one swscale context for the whole file: frame.to_ndarray(format=...) builds a new one
        # per call, which costs more than the conversion itself (measured 40x on small frames)
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()

    def get(self, indices: Sequence[int]) -> list[np.ndarray] | None:
        """Frames for `indices` (ascending, repeats allowed); None if nothing decodes."""
        out = []
        for t in indices:
            if t not in self._cache:
                frame = self._frame_at(t)
                if frame is None:
                    return None
                self._cache = {t: frame}  # only the latest: windows are disjoint
            out.append(self._cache[t])
        return out

    def _frame_at(self, target: int) -> np.ndarray | None:
        if self._held is not None and self._held[0] >= target:
            return self._rgb(self._held[1])
        self._maybe_seek(target)
        for frame in self._frames:
            i = self._pts_to_idx.get(frame.pts, -1) if self._index.exact else self._pos + 1
            if i < 0:  # a pts the demuxer never showed: numbering is unreliable, stay put
                continue
            self._pos, self._held = i, (i, frame)
            if i >= target:
                return self._rgb(frame)
        return self._rgb(self._held[1]) if self._held is not None else None

    def _choose_skip(self, packet: Any) -> None:
        """Let the decoder drop non-reference frames (B-frames, mostly) that are no target:
        nothing else depends on them, so the targets decode the same, for less work."""
        if not self._targets:
            return
        skip = self._pts_to_idx.get(packet.pts, -1) not in self._targets
        if skip != self._skipping:
            self._stream.codec_context.skip_frame = "NONREF" if skip else "DEFAULT"
            self._skipping = skip

    def _rgb(self, frame: Any) -> np.ndarray:
        return _to_rgb(frame, self._reformatter)

    def _maybe_seek(self, target: int) -> None:
        if not self._index.exact or self._keys.size == 0:
            return
        pos = int(np.searchsorted(self._keys, target, side="right")) - 1
        k = int(self._keys[max(0, pos)])
        if k - self._pos < SEEK_MIN_GAP or k > target:
            return
        self._frames.close()  # type: ignore[attr-defined]
        self._box.seek(int(self._index.pts[k]), stream=self._stream, backward=True)
        self._frames = decoded_frames(self._box, self._stream, self._choose_skip)
        self._held = None


def _to_rgb(frame: Any, reformatter: Any) -> np.ndarray:
    """RGB24 as decord returns it (swscale's default conversion), display rotation applied."""
    rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
    turns = round((frame.rotation or 0) / 90) % 4
    return np.rot90(rgb, turns) if turns else rgb
