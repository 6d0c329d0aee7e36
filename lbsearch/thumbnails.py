"""Thumbnails of indexed segments, for the web page: one small JPEG per (content, segment, size).

- pictures and thermal images: scaled, upright (EXIF), RGB;
- depth maps: false colour, near = dark purple, far = pale yellow, stretched between the map's
  nearest and farthest valid values;
- video segments: the frame at the segment's middle;
- audio segments (and a video's sound track): a log-magnitude spectrogram of the segment's span.

Files are opened only through `lbsearch.media.indexed.open_indexed` (an indexed row, inside a
root, no link, the recorded device, inode, size and mtime) and read from that handle with the
usual limits (Pillow's pixel limit, the video decoder's frame numbering). The check runs on every
request, cached thumbnail or not: a file that was deleted, failed or swapped since gets
`ThumbnailError` and its cached pictures are removed.

Where: video and audio thumbnails are decoded in a decode pool's worker process when the cache
has one (the web service's shared pool: FFmpeg's crashes, time-outs and memory stay out of the
server, with the indexer's limits). The worker opens the file again through `open_indexed`
(O_NOFOLLOW, then fstat against the recorded device, inode, size and mtime), so a path swapped
after the server's check is refused there ("vanished"). Pictures and depth maps are drawn in the
caller's thread: Pillow's pixel limit bounds them (a few hundred MB at most) and they are quick.

Sizes: three (`SIDES`); any asked size rounds up to the next one (the largest past it), so a
page cannot fill the cache with one file per pixel count. Rendered thumbnails are cached under
`<library>/cache/thumbnails/`, named by content hash, modality, segment span and size (shared by
renamed or duplicated files, kept across restarts), in an LRU capped in bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from .config import Config
from .errors import LbsearchError, MediaError
from .media.indexed import NotServable, Roots, open_indexed, reopen_in_worker
from .media.worker import WorkerTask
from .types import Modality

if TYPE_CHECKING:
    from PIL.Image import Image

    from .catalog.records import FileRecord, SegmentRecord
    from .media.shared_pool import SharedPool

THUMBNAIL_DIR = ("cache", "thumbnails")
SIDES = (160, 320, 640)
DEFAULT_SIDE = 320
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
_JPEG_QUALITY = 85
_SPECTROGRAM_RATE = 16000
_FFT = 2048  # 7.8 Hz bins at 16 kHz: low pitches get rows of their own on the log axis
_SPECTROGRAM_HEIGHT = 160

# Anchor colours of the false-colour scale (dark to light), interpolated linearly.
_PALETTE = np.array(
    [
        [12, 7, 40],
        [70, 16, 110],
        [140, 40, 120],
        [210, 70, 90],
        [245, 135, 50],
        [250, 210, 80],
        [252, 250, 190],
    ],
    dtype=np.float64,
)


class ThumbnailError(LbsearchError):
    """A thumbnail cannot be made (the file is gone, changed, or unreadable)."""


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    media_type: str = "image/jpeg"


def fixed_side(asked: int) -> int:
    """The thumbnail size served for `asked` pixels: the next of `SIDES` (the largest past it)."""
    return next((side for side in SIDES if side >= asked), SIDES[-1])


class ThumbnailCache:
    """Renders thumbnails on demand and keeps the recent ones in `<library>/cache/thumbnails/`,
    at most `max_bytes` of them (least recently used go first). Thread-safe."""

    def __init__(
        self,
        library_root: Path,
        config: Config,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        pool: Callable[[], SharedPool] | None = None,
    ) -> None:
        """`pool`: gives the decode pool for video and audio thumbnails (None: drawn here)."""
        self.folder = Path(library_root).joinpath(*THUMBNAIL_DIR)
        self.config = config
        self.max_bytes = max_bytes
        self._pool = pool
        self._turns_left: threading.BoundedSemaphore | None = None
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, int] = OrderedDict()  # oldest use first
        self._bytes = 0
        self._scan()

    @property
    def used_bytes(self) -> int:
        return self._bytes

    def path_for(self, file: FileRecord, segment: SegmentRecord, side: int) -> Path:
        digest = _digest(file)
        span = f"{round(segment.start_s * 1000)}-{round(segment.end_s * 1000)}"
        return self.folder / digest[:2] / f"{digest}-{segment.modality.value}-{span}-{side}.jpg"

    def get(
        self, file: FileRecord, segment: SegmentRecord, roots: Roots, side: int = DEFAULT_SIDE
    ) -> Thumbnail:
        """The cached thumbnail, or a fresh one (then cached); ThumbnailError if the file may
        not be shown (see `lbsearch.media.indexed`) or cannot be drawn."""
        side = fixed_side(side)
        try:
            handle, _ = open_indexed(file, roots)
        except NotServable as error:
            self.forget(file)
            raise ThumbnailError(error.message, error.hint) from None
        with handle:
            cached = self.path_for(file, segment, side)
            data = self._read(cached)
            if data is None:
                data = self._draw(handle, file, segment, side, roots)
                self._store(cached, data)
        return Thumbnail(data)

    def _draw(
        self, handle: BinaryIO, file: FileRecord, segment: SegmentRecord, side: int, roots: Roots
    ) -> bytes:
        if self._pool is None or segment.modality not in _IN_WORKER:
            return _jpeg(render(handle, file, segment, side, self.config))
        pool = self._pool()
        limit = self.config.media.decode_timeout_s
        wait_s = 4 * limit if limit > 0 else 3600.0
        task = ThumbnailTask(file, segment, side, roots)
        with self._turns(pool.max_jobs):  # a page of thumbnails leaves uploads their places
            ticket = pool.submit(Path(file.path), task, wait_s=wait_s)
            try:
                data = ticket.payload(timeout_s=wait_s)
            except MediaError as error:
                if error.reason == "vanished":
                    self.forget(file)
                raise ThumbnailError(error.message, error.hint) from None
            finally:
                ticket.cancel()  # a no-op once answered
        if not data:  # cancelled (the pool is stopping)
            raise ThumbnailError(f"{file.path}: no thumbnail (the service is stopping)")
        return data

    def _turns(self, max_jobs: int) -> threading.BoundedSemaphore:
        """Half the pool's places at most for thumbnails (the rest stay for uploads); a
        thumbnail past them waits for its turn rather than failing."""
        with self._lock:
            if self._turns_left is None:
                self._turns_left = threading.BoundedSemaphore(max(1, max_jobs // 2))
            return self._turns_left

    def forget(self, file: FileRecord) -> None:
        """Remove every cached thumbnail of `file`'s content (gone, failed or swapped)."""
        prefix = f"{_digest(file)}-"
        with self._lock:
            for path in [p for p in self._entries if p.name.startswith(prefix)]:
                self._drop(path)

    # ---- the LRU ---------------------------------------------------------------------------

    def _scan(self) -> None:
        """Adopt what earlier runs left, oldest first, trimmed to the cap."""
        found = []
        for path in self.folder.glob("*/*.jpg"):
            try:
                st = path.stat()
            except OSError:
                continue
            found.append((st.st_mtime_ns, path, st.st_size))
        for _, path, size in sorted(found):
            self._entries[path] = size
            self._bytes += size
        with self._lock:
            self._trim()

    def _read(self, path: Path) -> bytes | None:
        with self._lock:
            if path not in self._entries:
                return None
            self._entries.move_to_end(path)
        try:
            return path.read_bytes()
        except OSError:
            with self._lock:
                self._drop(path)
            return None

    def _store(self, path: Path, data: bytes) -> None:
        if len(data) > self.max_bytes or not _write_atomically(path, data):
            return
        with self._lock:
            self._bytes += len(data) - self._entries.pop(path, 0)
            self._entries[path] = len(data)
            self._trim()

    def _trim(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, path: Path) -> None:
        self._bytes -= self._entries.pop(path, 0)
        with contextlib.suppress(OSError):
            path.unlink()


_IN_WORKER = (Modality.VIDEO, Modality.AUDIO)


@dataclass(frozen=True)
class ThumbnailTask(WorkerTask):
    """A thumbnail drawn in a decode worker: the file is opened and verified there again."""

    file: FileRecord
    segment: SegmentRecord
    side: int
    roots: Roots

    def run(self, cfg: Config) -> bytes:
        path = self.file.path
        with reopen_in_worker(self.file, self.roots) as handle:
            try:
                return _jpeg(render(handle, self.file, self.segment, self.side, cfg))
            except ThumbnailError as error:
                raise MediaError(path, "corrupt", error.message, error.hint) from None


def _digest(file: FileRecord) -> str:
    return file.content_hash or f"id{file.id}-{file.size}-{file.mtime_ns}"


def render(
    handle: BinaryIO, file: FileRecord, segment: SegmentRecord, side: int, config: Config
) -> Image:
    """The thumbnail of `segment` of the opened `file` as an RGB picture at most `side` a side."""
    path = Path(file.path)  # names the file in messages; never opened again
    try:
        picture = _draw(handle, path, segment, side, config)
    except MediaError as error:
        raise ThumbnailError(error.message, error.hint) from None
    except ThumbnailError:
        raise
    except Exception as error:  # a decoder's exotic failure: a missing thumbnail, not a crash
        raise ThumbnailError(f"{path}: cannot make a thumbnail ({error})") from None
    picture.thumbnail((side, side))
    return picture.convert("RGB")


def _draw(handle: BinaryIO, path: Path, segment: SegmentRecord, side: int, config: Config) -> Image:
    from .media import preview

    modality = segment.modality
    handle.seek(0)
    if modality in (Modality.IMAGE, Modality.THERMAL, Modality.VIDEO):
        at_s = (segment.start_s + segment.end_s) / 2
        view = preview.describe_open(handle, path, modality, at_s, side, config)
        assert view.picture is not None
        return view.picture
    if modality is Modality.DEPTH:
        return false_colour(_depth_values(handle, path, config))
    return _spectrogram(handle, path, segment.start_s, segment.end_s)


# ----------------------------------------------------------------------------- pictures


def _depth_values(handle: BinaryIO, path: Path, config: Config) -> np.ndarray:
    """Raw depth readings (preview's depth picture is grey; the web page shows false colour)."""
    from .media.image import _depth_image_metres, _is_npy, _open_image, _read_npy_depth

    pixels = config.media.max_image_pixels
    if _is_npy(handle):
        return _read_npy_depth(handle, path, pixels)
    with _open_image(handle, path, pixels) as im:
        return _depth_image_metres(im, path)


def false_colour(depth: np.ndarray) -> Image:
    """A depth map (any units; 0, NaN and inf mean "no reading") in the false-colour scale,
    stretched between its nearest and farthest readings; no reading is black."""
    values = np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    valid = values > 0
    low, high = (values[valid].min(), values[valid].max()) if valid.any() else (0.0, 1.0)
    scaled = np.clip((values - low) / ((high - low) or 1.0), 0.0, 1.0)
    rgb = colour_scale(scaled)
    rgb[~valid] = 0
    return _from_rgb(rgb)


def colour_scale(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> (..., 3) uint8 colours of the palette."""
    stops = np.linspace(0.0, 1.0, len(_PALETTE))
    channels = [np.interp(unit, stops, _PALETTE[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


# ---------------------------------------------------------------------------------- audio


def _spectrogram(handle: BinaryIO, path: Path, start_s: float, end_s: float) -> Image:
    """Log-magnitude spectrogram of [start_s, end_s] of the first audio stream on a logarithmic
    pitch axis (50 Hz at the bottom to 8 kHz at the top), 60 dB under the loudest part; a span
    of zero length (a whole short file) shows up to 10 s from start_s."""
    wave = _audio_span(handle, path, start_s, end_s if end_s > start_s else start_s + 10.0)
    if len(wave) < _FFT:
        wave = np.pad(wave, (0, _FFT - len(wave)))
    hop = max(_FFT // 4, (len(wave) - _FFT) // 480 + 1)
    frames = np.lib.stride_tricks.sliding_window_view(wave, _FFT)[::hop] * np.hanning(_FFT)
    decibels = 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-10)
    rows = _log_pitch_rows(decibels, _SPECTROGRAM_HEIGHT)
    unit = np.clip((rows - (rows.max() - 60.0)) / 60.0, 0.0, 1.0)
    picture = _from_rgb(colour_scale(unit.T[::-1]))
    return picture.resize((max(picture.width, 2 * _SPECTROGRAM_HEIGHT), _SPECTROGRAM_HEIGHT))


def _log_pitch_rows(decibels: np.ndarray, count: int) -> np.ndarray:
    """(frames, bins) on a linear frequency axis -> (frames, count) on a logarithmic one; each
    row keeps the loudest bin of its band (a tone is never lost between two rows)."""
    edges = np.geomspace(50.0, _SPECTROGRAM_RATE / 2, count + 1) / (_SPECTROGRAM_RATE / _FFT)
    starts = np.clip(np.floor(edges[:-1]).astype(int), 0, decibels.shape[1] - 1)
    return np.maximum.reduceat(decibels, starts, axis=1)


def _audio_span(handle: BinaryIO, path: Path, start_s: float, end_s: float) -> np.ndarray:
    """Mono float32 samples at 16 kHz of [start_s, end_s] on the file's segment timeline."""
    from .media.audio import _first_channel
    from .media.avio import decoded_frames, open_container, timeline_origin
    from .media.resample import resample

    with open_container(handle, path) as box:
        if not box.streams.audio:
            raise ThumbnailError(f"{path}: no audio stream")
        stream = box.streams.audio[0]
        origin = timeline_origin(box)
        if start_s > 0 and stream.time_base is not None:
            box.seek(int((origin + start_s) / stream.time_base), stream=stream, backward=True)
        parts, rate = [], 0
        for frame in decoded_frames(box, stream):
            rate = rate or int(frame.sample_rate)
            begins = (frame.time or 0.0) - origin
            if begins >= end_s:
                break
            samples = _first_channel(frame)
            skip = max(0, round((start_s - begins) * rate))
            parts.append(samples[skip : max(0, round((end_s - begins) * rate))])
    if not parts or not rate:
        raise ThumbnailError(f"{path}: no sound decodes between {start_s:.1f} and {end_s:.1f} s")
    wave = np.concatenate(parts).astype(np.float32)
    return resample(wave, rate, _SPECTROGRAM_RATE) if rate != _SPECTROGRAM_RATE else wave


# --------------------------------------------------------------------------------- output


def _from_rgb(rgb: np.ndarray) -> Image:
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")


def _jpeg(picture: Image) -> bytes:
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()


def _write_atomically(path: Path, data: bytes) -> bool:
    """Temp file + rename: a reader sees a whole thumbnail or none. A cache that cannot be
    written (read-only library) is not an error: the thumbnail is just made again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".jpg")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Path(temp).replace(path)
    except OSError:
        return False
    return True
