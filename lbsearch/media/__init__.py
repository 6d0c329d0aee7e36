"""Media decoding: files -> encoder-ready segments, with typed, reason-coded failures.

- `classify(path, classify_cfg, root, forced)` -> Modality
- `decode(path, spec, cfg)` -> list[Segment]
- `DecodePool`: decoding in worker processes with a per-file time limit, results streamed
- `measure_throughput(...)`: media seconds decoded per second (for the benchmark)
- `REASONS`: every reason code a MediaError from this package can carry, with its meaning
"""

from __future__ import annotations

from .classify import AUDIO_EXTS, IMAGE_EXTS, VIDEO_EXTS, classify
from .decode import decode
from .reasons import REASONS

__all__ = ["AUDIO_EXTS", "IMAGE_EXTS", "REASONS", "VIDEO_EXTS", "classify", "decode"]
