"""LanguageBind towers in ONNX Runtime: exported once per checkpoint into the user cache.

`load_onnx_media_tower` and `load_onnx_text_tower` are the whole interface; running a cached
tower imports neither torch nor transformers. Exporting (the first time) needs torch, onnx and
onnxscript.
"""

from __future__ import annotations

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
