"""Media decoding: files -> encoder-ready segments, with typed, reason-coded failures.

- `classify(path, classify_cfg, root=None, forced=None)` -> Modality
- `decode(path, spec, cfg)` -> list[Segment] (raises MediaError with a `REASONS` code)
- `DecodePool(cfg)`: decoding in worker processes with a per-file time limit; `imap(jobs)`
  streams `DecodeResult`s as files finish
- `measure_throughput(paths, spec, cfg, workers)`: media seconds decoded per second
- `REASONS`: every reason code a MediaError from this package can carry, with its meaning

Importing this package is cheap: torch, PyAV, Pillow and kaldi-native-fbank load on first use.
"""

from __future__ import annotations

from .classify import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS, classify
from .decode import decode
from .pool import DecodeJob, DecodePool, DecodeResult, DecodeStream, JobQueue, PoolBrokenError
from .reasons import REASONS
from .throughput import Throughput, measure_throughput

__all__ = [
    "AUDIO_EXTS",
    "IMAGE_EXTS",
    "REASONS",
    "VIDEO_EXTS",
    "DecodeJob",
    "DecodePool",
    "DecodeResult",
    "DecodeStream",
    "JobQueue",
    "PoolBrokenError",
    "Throughput",
    "classify",
    "decode",
    "measure_throughput",
]
