"""The sound of a clip: decoded, trimmed to the exact samples of the span, and re-encoded.

Re-encoding (rather than copying packets) is what makes the sound start on the same instant as
the picture's first frame: compressed audio packets are 20-60 ms long. More than two channels are
mixed down to stereo.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from av.container import OutputContainer

_EPS = 1e-6


class AudioSink:
    """Decodes the sound and re-encodes exactly the samples of [clip_start, end)."""

    def __init__(
        self,
        sink: OutputContainer,
        ain: Any,
        codec: str,
        origin: float,
        clip_start: float,
        end: float,
    ) -> None:
        import av

        rate = 48000 if codec == "libopus" else int(ain.codec_context.sample_rate or 48000)
        layout = "mono" if (ain.codec_context.channels or 1) == 1 else "stereo"
        self.stream, self._sink, self._rate = ain, sink, rate
        self._out: Any = sink.add_stream(codec, rate=rate, layout=layout)
        formats: Any = self._out.codec_context.codec.audio_formats
        fmt = "s16" if codec == "pcm_s16le" else formats[0].name
        self._resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self._tb, self._origin = ain.time_base, origin
        self._start, self._end = clip_start, end
        self._fifo = av.AudioFifo()
        self._encoded = 0
        self.done = False

    def feed(self, packet: Any) -> None:
        if self.done:
            return
        for frame in packet.decode():
            if frame.pts is None:
                continue
            t0 = float(frame.pts * self._tb) - self._origin
            for out in self._resampler.resample(frame):
                self._trim_and_encode(out, t0)
                t0 += out.samples / self._rate

    def _trim_and_encode(self, frame: Any, t0: float) -> None:
        import av

        first = max(0, round((self._start - t0) * self._rate))
        last = min(frame.samples, round((self._end - t0) * self._rate))
        if t0 >= self._end - _EPS:
            self.done = True
            return
        if last <= first:
            return
        data = frame.to_ndarray()
        width = 1 if frame.format.is_planar else len(frame.layout.channels)  # packed: interleaved
        part = data[:, first * width : last * width]
        piece = av.AudioFrame.from_ndarray(part, format=frame.format.name, layout=frame.layout.name)
        piece.sample_rate = self._rate
        if self._encoded == 0 and self._fifo.samples == 0:
            self._silence(round((t0 - self._start) * self._rate) + first, frame)
        self._fifo.write(piece)
        self._drain(self._out.codec_context.frame_size or 1024)

    def _drain(self, size: int) -> None:
        # the encoder takes whole frames; the fifo carries the sample count, so pts stay exact
        while self._fifo.samples >= max(size, 1):
            self._encode(self._fifo.read(size))

    def _encode(self, chunk: Any) -> None:
        chunk.pts, chunk.time_base = self._encoded, Fraction(1, self._rate)
        self._encoded += chunk.samples
        self._sink.mux(self._out.encode(chunk))

    def _silence(self, samples: int, like: Any) -> None:
        """Sound that starts after the picture does starts as late in the clip."""
        import av
        import numpy as np

        if samples <= 0:
            return
        channels = len(like.layout.channels)
        shape = (channels, samples) if like.format.is_planar else (1, samples * channels)
        zeros = np.zeros(shape, like.to_ndarray().dtype)
        gap = av.AudioFrame.from_ndarray(zeros, format=like.format.name, layout=like.layout.name)
        gap.sample_rate = self._rate
        self._fifo.write(gap)

    def close(self) -> None:
        if self._fifo.samples:
            self._encode(self._fifo.read())
        self._sink.mux(self._out.encode(None))
