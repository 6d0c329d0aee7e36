"""Audio files and the sound tracks of videos -> windows of Kaldi fbank features.

Reference chain (spec 2.5): first channel, resampled to 16 kHz (torchaudio's sinc filter, here
`resample.SincResampler`), global mean removed, Kaldi fbank (25 ms / 10 ms, Hann, no dither, M mel
bins), (x - mean) / (2 std), input (3, M, L) with L = target_length frames.
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

Windows are computed one at a time from the decoded wave (each fbank frame depends only on its own
25 ms of samples), and yielded as they are made, so a long file never holds all its windows.
The last window of an audio file ends at the decoded audio's end (not at its last fbank frame).
"""

from __future__ import annotations

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
# integer sample formats -> the divisor that makes them float in [-1, 1), as libsndfile does
_PREALLOCATE_MAX_S = 4 * 3600
_INT_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def decode_audio(handle: BinaryIO, path: Path, spec: MediaSpec, cfg: Config) -> Iterator[Segment]:
    """The windows of an audio file (or a video's sound track) as (3, M, L) segments."""
    from .video import window_spans

    spans = window_spans(handle, path, cfg)  # None: no video stream, a plain audio file
    with open_container(handle, path) as box:
        if not box.streams.audio:
            raise media_error(path, "no_audio", "the file has no audio stream")
        stream = box.streams.audio[0]
        offset = _stream_start(stream) - timeline_origin(box)
        wave, seconds = _read_resampled(box, stream, spec.sample_rate, cfg.audio.max_seconds)
    if wave.size == 0:
        raise media_error(path, "no_audio", "no audio sample could be decoded")
    frame_length, shift = _frame_geometry(spec)
    if wave.size < frame_length:
        detail = f"{wave.size} samples at {spec.sample_rate} Hz < one fbank frame ({frame_length})"
        raise media_error(path, "audio_too_short", detail)
    wave -= wave.mean()  # the reference's global mean removal (fbank also removes per-frame DC)
    frames = 1 + (wave.size - frame_length) // shift
    windows = _windows(frames, spec.target_length, cfg.audio.hop_frames, spans, offset, seconds)
    for (first, end), (t0, t1) in windows:
        feats = normalised_fbank(wave[first * shift : (end - 1) * shift + frame_length], spec)
        pixels = _window_pixels(feats, spec.target_length)
        start_s, end_s = round(max(0.0, t0), 6), round(max(0.0, t1), 6)
        yield Segment(str(path), Modality.AUDIO, start_s, end_s, pixels)


def _windows(
    frames: int,
    length: int,
    hop: int,
    spans: list[tuple[float, float]] | None,
    offset: float,
    seconds: float,
) -> list[tuple[tuple[int, int], tuple[float, float]]]:
    """((first, end) fbank frames, (start, end) seconds) of each window: a video's windows when
    `spans` are given (a sound track), else every `hop` frames."""
    if spans is not None:
        chosen = [(sound_window_frames(a, b, offset, frames, length), (a, b)) for a, b in spans]
        return [(heard, span) for heard, span in chosen if heard is not None]
    planned = plan_audio_windows(frames, length, hop)
    times = [(offset + a * FRAME_SHIFT_S, offset + b * FRAME_SHIFT_S) for a, b in planned]
    times[-1] = (times[-1][0], offset + seconds)  # the media's end, not the last frame's
    return list(zip(planned, times, strict=True))


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


def _read_resampled(
    box: InputContainer, stream: Any, rate: int, max_seconds: float
) -> tuple[np.ndarray, float]:
    """First channel as float32, resampled to `rate` while decoding, and the seconds decoded
    (counted in source samples, so resampling cannot shorten it)."""
    resampler: SincResampler | None = None
    source_rate = 0
    taken, limit = 0, 0
    out = _Samples(_expected_samples(box, stream, rate, max_seconds))
    for frame in decoded_frames(box, stream):
        if not source_rate:
            source_rate = int(frame.sample_rate)
            limit = int(max_seconds * source_rate) if max_seconds > 0 else 0
            resampler = SincResampler(source_rate, rate) if source_rate != rate else None
        elif frame.sample_rate != source_rate:
            break  # a mid-stream rate change (rare, broken muxing): keep the consistent part
        samples = _first_channel(frame)
        if limit:
            samples = samples[: max(0, limit - taken)]
        taken += len(samples)
        out.append(resampler.process(samples) if resampler else samples)
        if limit and taken >= limit:
            break
    if resampler is not None:
        out.append(resampler.flush())
    seconds = taken / source_rate if source_rate else 0.0
    return out.array(), seconds


class _Samples:
    """A growing float32 array, sized up front from the container's duration: a long track is
    held once, not once in pieces and again joined (an hour at 16 kHz is 230 MB)."""

    def __init__(self, expected: int) -> None:
        self._data = np.empty(max(expected, 1 << 16), np.float32)
        self._size = 0

    def append(self, samples: np.ndarray) -> None:
        end = self._size + len(samples)
        if end > len(self._data):
            grown = np.empty(max(end, len(self._data) * 3 // 2), np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = samples
        self._size = end

    def array(self) -> np.ndarray:
        return self._data[: self._size]


def _expected_samples(box: InputContainer, stream: Any, rate: int, max_seconds: float) -> int:
    """Samples at `rate` the stream should give (a little over), or 0 if it does not say."""
    seconds = 0.0
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif box.duration is not None:
        seconds = box.duration / 1_000_000
    if max_seconds > 0:
        seconds = min(seconds, max_seconds)
    seconds = min(seconds, _PREALLOCATE_MAX_S)  # a header can lie; past this the array grows
    return int(seconds * rate * 1.01) + rate


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
