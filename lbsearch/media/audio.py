"""Audio files and the sound tracks of videos -> windows of Kaldi fbank features.

Reference chain (spec 2.5): first channel, resampled to 16 kHz (torchaudio's sinc filter, here
`resample.SincResampler`), global mean removed (here implied, see below), Kaldi fbank (25 ms /
10 ms, Hann, no dither, M mel bins), (x - mean) / (2 std), input (3, M, L) with L =
target_length frames.
Deliberate difference: a long file is cut into fixed windows of L frames every `audio.hop_frames`
(the last window ends at the last frame), each filling all 3 channels, instead of the reference's
3 random windows per file; only a file shorter than one window is tiled, as in the reference.

A video's sound track follows the video's windows instead (`sound_window_frames`): one audio
segment per video window, with the window's own start and end, so a moment has a picture and a
sound with the same timestamps. The audio tower hears L frames (10.36 s at L = 1036), centred on
the window's middle: a 10 s window hears 0.18 s of each neighbour, a longer one (the last window,
which absorbs a short remainder) its central 10.36 s. At the ends of the track the L frames move
inwards instead of being padded; a track shorter than L is tiled, as above; a window that the
track does not reach has no sound segment.

Windows are made while the file decodes (each fbank frame depends only on its own 25 ms of
samples) and yielded at once; only the samples a coming window still needs are kept, so memory
does not grow with the file's length. The reference's global mean removal is left out: fbank
removes each frame's own mean first (remove_dc_offset), which cancels it exactly (the outputs
agree with the reference's within float rounding, see tests/test_media_reference.py).
The last window of an audio file ends at the decoded audio's end (not at its last fbank frame).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ..config import Config
from ..types import MediaSpec, Modality, Segment
from .avio import decoded_frames, open_container, timeline_origin
from .reasons import media_error
from .resample import SincResampler

if TYPE_CHECKING:
    import torch
    from av.container import InputContainer

FRAME_LENGTH = 400  # samples per fbank frame at 16 kHz (25 ms)
FRAME_SHIFT_S = 0.01  # 10 ms between fbank frames
_UNBOUNDED = 1 << 62  # "the track has not ended yet", as a frame count
# integer sample formats -> the divisor that makes them float in [-1, 1), as libsndfile does
_INT_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def decode_audio(handle: BinaryIO, path: Path, spec: MediaSpec, cfg: Config) -> Iterator[Segment]:
    """The windows of an audio file (or a video's sound track) as (3, M, L) segments, made while
    the file decodes: memory holds about one window of samples, whatever the length."""
    from .video import window_spans

    with open_container(handle, path) as box:
        if not box.streams.audio:
            raise media_error(path, "no_audio", "the file has no audio stream")
    spans = window_spans(handle, path, cfg)  # None: no video stream, a plain audio file
    with open_container(handle, path) as box:
        stream = box.streams.audio[0]
        offset = _stream_start(stream) - timeline_origin(box)
        chunks = _Resampled(box, stream, spec.sample_rate, cfg.audio.max_seconds)
        windows = _WindowMaker(path, spec, cfg.audio.hop_frames, spans, offset)
        for chunk in chunks:
            yield from windows.add(chunk)
        yield from windows.finish(chunks.seconds)


class _WindowMaker:
    """Cuts windows out of a stream of 16 kHz samples as soon as their samples are in.

    A window is final once its L frames are in (only the end of the track moves or adds windows),
    so it is made then and only the samples still needed are kept: the next window's, and the
    last L frames (for the window that ends at the track's end). The reference removes the
    global mean of the wave before fbank; fbank removes each frame's mean (remove_dc_offset)
    before anything else, which makes that a no-op, so a stream needs no second pass.
    """

    def __init__(
        self,
        path: Path,
        spec: MediaSpec,
        hop: int,
        spans: list[tuple[float, float]] | None,
        offset: float,
    ) -> None:
        self.path, self.spec, self.hop, self.spans, self.offset = (
            path,
            spec,
            max(1, hop),
            spans,
            offset,
        )
        self.frame_length, self.shift = _frame_geometry(spec)
        self.length = spec.target_length
        self.buffer = np.zeros(0, np.float32)
        self.pieces: list[np.ndarray] = []
        self.base = 0  # sample index of buffer[0]
        self.received = 0
        self.next = 0  # next window: index into spans, or the number of hop windows made
        self.held: Segment | None = None  # the latest window, yielded once the next one exists
        self.last_end = 0  # frame where the latest window ends

    def add(self, samples: np.ndarray) -> Iterator[Segment]:
        self.pieces.append(samples)  # joined only when a window is due: one copy per window
        self.received += len(samples)
        window = self._ready_window()
        if window is None:
            return
        self._join()
        while window is not None:
            yield from self._emit(*window)
            window = self._ready_window()
        self._trim()

    def _join(self) -> None:
        if self.pieces:
            self.buffer = np.concatenate([self.buffer, *self.pieces])
            self.pieces = []

    def finish(self, seconds: float) -> Iterator[Segment]:
        if self.received == 0:
            raise media_error(self.path, "no_audio", "no audio sample could be decoded")
        if self.received < self.frame_length:
            rate = self.spec.sample_rate
            detail = f"{self.received} samples at {rate} Hz < one fbank frame ({self.frame_length})"
            raise media_error(self.path, "audio_too_short", detail)
        frames = 1 + (self.received - self.frame_length) // self.shift
        self._join()
        for (first, end), (t0, t1) in self._tail_windows(frames, seconds):
            yield from self._emit(first, end, t0, t1)
        if self.held is not None:
            held, self.held = self.held, None
            if self.spans is None:  # a file's last window ends at the media's end
                held = dataclasses.replace(held, end_s=round(max(0.0, self.offset + seconds), 6))
            yield held

    def _ready_window(self) -> tuple[int, int, float, float] | None:
        """The next window whose frames are all in, with its times; None if it must wait."""
        available = (self.received - self.frame_length) // self.shift + 1
        if self.spans is None:
            first = self.next * self.hop
            if first + self.length > available:
                return None
            self.next += 1
            t0, t1 = (
                self.offset + first * FRAME_SHIFT_S,
                self.offset + (first + self.length) * FRAME_SHIFT_S,
            )
            return first, first + self.length, t0, t1
        while self.next < len(self.spans):
            start_s, end_s = self.spans[self.next]
            heard = sound_window_frames(start_s, end_s, self.offset, _UNBOUNDED, self.length)
            if heard is not None and heard[1] > available:
                return None
            self.next += 1
            if heard is not None:
                return heard[0], heard[1], start_s, end_s
        return None

    def _tail_windows(
        self, frames: int, seconds: float
    ) -> list[tuple[tuple[int, int], tuple[float, float]]]:
        """The windows that depend on where the track ends."""
        if self.spans is not None:
            rest = self.spans[self.next :]
            heard = [
                (sound_window_frames(a, b, self.offset, frames, self.length), (a, b))
                for a, b in rest
            ]
            return [(frames_, span) for frames_, span in heard if frames_ is not None]
        if frames <= self.length:
            return [((0, frames), (self.offset, self.offset + seconds))]
        if self.last_end < frames:
            first = frames - self.length
            return [((first, frames), (self.offset + first * FRAME_SHIFT_S, self.offset + seconds))]
        return []

    def _emit(self, first: int, end: int, t0: float, t1: float) -> Iterator[Segment]:
        lo = first * self.shift - self.base
        hi = (end - 1) * self.shift + self.frame_length - self.base
        feats = normalised_fbank(self.buffer[lo:hi], self.spec)
        pixels = _window_pixels(feats, self.length)
        segment = Segment(
            str(self.path), Modality.AUDIO, round(max(0.0, t0), 6), round(max(0.0, t1), 6), pixels
        )
        self.last_end = max(self.last_end, end)
        if self.held is not None:
            yield self.held
        self.held = segment

    def _trim(self) -> None:
        """Drop the samples no window can need any more."""
        available = (self.received - self.frame_length) // self.shift + 1
        keep = max(0, available - self.length) * self.shift  # the last L frames' samples
        if self.spans is None:
            keep = min(keep, self.next * self.hop * self.shift)
        elif self.next < len(self.spans):
            start_s, end_s = self.spans[self.next]
            heard = sound_window_frames(start_s, end_s, self.offset, _UNBOUNDED, self.length)
            if heard is not None:
                keep = min(keep, heard[0] * self.shift)
        drop = max(0, keep - self.base)
        if drop:
            self.buffer = self.buffer[drop:]  # a view: the next join copies what is kept
            self.base += drop


def sound_window_frames(
    start_s: float, end_s: float, offset_s: float, frames: int, length: int
) -> tuple[int, int] | None:
    """[first, end) fbank frames heard for the video window [start_s, end_s): `length` frames
    centred on the window, moved inside the track at its ends; the whole track if shorter than
    `length`; None if the track (starting `offset_s` into the video) does not reach the window."""
    track_start, track_end = offset_s, offset_s + frames * FRAME_SHIFT_S
    if end_s <= track_start or start_s >= track_end:
        return None
    if frames <= length:
        return 0, frames
    centre = ((start_s + end_s) / 2 - offset_s) / FRAME_SHIFT_S
    first = min(max(round(centre - length / 2), 0), frames - length)
    return first, first + length


def plan_audio_windows(frames: int, length: int, hop: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges: every `hop` frames a window of `length`, the last one moved
    back to end at the last frame so the tail is covered without padding; one short window if
    the whole file is shorter than `length`."""
    if frames <= length:
        return [(0, frames)]
    starts = list(range(0, frames - length + 1, max(1, hop)))
    if starts[-1] + length < frames:
        starts.append(frames - length)
    return [(s, s + length) for s in starts]


def normalised_fbank(wave: np.ndarray, spec: MediaSpec) -> np.ndarray:
    """(frames, M) Kaldi fbank of a 16 kHz mono signal, normalised as the reference does."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = float(spec.sample_rate)
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hanning"
    opts.frame_opts.snip_edges = True
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.preemph_coeff = 0.97
    opts.mel_opts.num_bins = spec.num_mel_bins
    opts.use_energy = False
    opts.htk_compat = True
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(float(spec.sample_rate), wave)
    fbank.input_finished()
    feats = np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
    feats = feats.astype(np.float32, copy=False)
    return (feats - np.float32(spec.audio_mean)) / np.float32(spec.audio_std * 2)


def _window_pixels(feats: np.ndarray, length: int) -> torch.Tensor:
    """(frames, M) -> (3, M, length): tiled along time if short (the reference's padding)."""
    import torch

    if len(feats) < length:
        feats = np.tile(feats, (length // len(feats) + 1, 1))[:length]
    return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(feats.T, (3, *feats.T.shape))))


def _stream_start(stream: Any) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _frame_geometry(spec: MediaSpec) -> tuple[int, int]:
    """Samples per fbank frame (25 ms) and between frames (10 ms) at the spec's rate."""
    return spec.sample_rate * 25 // 1000, round(spec.sample_rate * FRAME_SHIFT_S)


class _Resampled:
    """First channel as float32 chunks, resampled to `rate` while decoding; `seconds` (counted
    in source samples, so resampling cannot shorten it) once the iteration is over."""

    def __init__(self, box: InputContainer, stream: Any, rate: int, max_seconds: float) -> None:
        self.box, self.stream, self.rate, self.max_seconds = box, stream, rate, max_seconds
        self.seconds = 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        resampler: SincResampler | None = None
        source_rate = 0
        taken, limit = 0, 0
        for frame in decoded_frames(self.box, self.stream):
            if not source_rate:
                source_rate = int(frame.sample_rate)
                limit = int(self.max_seconds * source_rate) if self.max_seconds > 0 else 0
                resampler = (
                    SincResampler(source_rate, self.rate) if source_rate != self.rate else None
                )
            elif frame.sample_rate != source_rate:
                break  # a mid-stream rate change (rare, broken muxing): keep the consistent part
            samples = _first_channel(frame)
            if limit:
                samples = samples[: max(0, limit - taken)]
            taken += len(samples)
            yield resampler.process(samples) if resampler else samples
            if limit and taken >= limit:
                break
        if resampler is not None:
            yield resampler.flush()
        self.seconds = taken / source_rate if source_rate else 0.0


def _first_channel(frame: Any) -> np.ndarray:
    """Channel 0 of a decoded audio frame as float32, integer PCM scaled as libsndfile does."""
    arr = frame.to_ndarray()
    fmt = frame.format.name
    if frame.format.is_planar:
        samples = arr[0]
    else:  # packed: (1, n * channels), interleaved
        samples = arr.reshape(-1)[:: max(1, len(frame.layout.channels))]
    base = fmt.rstrip("p")
    if base == "u8":
        return (samples.astype(np.float32) - 128.0) / 128.0
    if base in _INT_SCALE:
        return (samples.astype(np.float64) / _INT_SCALE[base]).astype(np.float32)
    return samples.astype(np.float32, copy=False)
