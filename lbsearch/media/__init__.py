"""Media decoding: files -> encoder-ready segments, with typed, reason-coded failures.

- `classify(path, classify_cfg, root=None, forced=None)` -> Modality
- `decode(path, spec, cfg)` -> list[Segment] (raises MediaError with a `REASONS` code)
- `decode_stream(path, spec, cfg)`: the same segments, yielded as they are made
- `DecodePool(cfg)`: decoding in worker processes with a time limit; `stream(jobs)` yields each
  file's segments in parts as they are decoded (bounded memory), `imap(jobs)` whole files;
  `start(JobQueue())` takes jobs while it runs
- `measure_throughput(paths, spec, cfg, workers)`: media seconds decoded per second
- `REASONS`: every reason code a MediaError from this package can carry, with its meaning

Importing this package is cheap: torch, PyAV, Pillow and kaldi-native-fbank load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names
from .classify import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS, classify
from .decode import decode, decode_stream
from .reasons import REASONS

if TYPE_CHECKING:
    from .pool import DecodeJob, DecodePool, DecodeResult, DecodeStream, JobQueue, PoolBrokenError
    from .throughput import Throughput, measure_throughput

# The pool and the throughput probe load on first use: a module that needs the extension lists
# (the query language) does not pay for them. (`classify` and `decode` are imported here, as
# they share their modules' names: a lazy one would be shadowed by its module once imported.)
_WHERE = {
    "DecodeJob": ".pool",
    "DecodePool": ".pool",
    "DecodeResult": ".pool",
    "DecodeStream": ".pool",
    "JobQueue": ".pool",
    "PoolBrokenError": ".pool",
    "Throughput": ".throughput",
    "measure_throughput": ".throughput",
}


__getattr__ = lazy_names(__name__, _WHERE)

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
    "decode_stream",
    "measure_throughput",
]
