"""LanguageBind towers in ONNX Runtime: exported once per checkpoint into the user cache.

`load_onnx_media_tower` and `load_onnx_text_tower` are the whole interface; running a cached
tower imports neither torch nor transformers. Exporting (the first time) needs torch, onnx and
onnxscript.
"""

from __future__ import annotations

import os

# ONNX Runtime 1.29 and later record telemetry on Linux and macOS too: a device identifier and
# an SQLite store of events under ~/.cache/Microsoft/DeveloperTools, uploaded when the network
# allows. A local search engine sends nothing: this turns all of it off (nothing created,
# recorded or sent) in any process that loads lbsearch's towers, before ONNX Runtime loads;
# set ORT_DISABLE_TELEMETRY=0 beforehand to leave it on. (It also cost ~40 ms of CPU a query.)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from .cache import OnnxCacheError, cache_root
from .quantize import cpu_has_vnni
from .sessions import OnnxMediaTower, OnnxTextTower
from .towers import MEDIA_DTYPES, load_onnx_media_tower, load_onnx_text_tower

__all__ = [
    "MEDIA_DTYPES",
    "OnnxCacheError",
    "OnnxMediaTower",
    "OnnxTextTower",
    "cache_root",
    "cpu_has_vnni",
    "load_onnx_media_tower",
    "load_onnx_text_tower",
]
