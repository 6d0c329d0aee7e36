"""lbsearch: local cross-modal search over media with the LanguageBind encoders.

The public encoder API is re-exported here lazily, so importing lbsearch stays cheap (no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .embedder.public import load_encoder
    from .models.encoder import Encoder, TextEncoder, load_text_encoder

__all__ = ["Encoder", "TextEncoder", "__version__", "load_encoder", "load_text_encoder"]

_LAZY = {"Encoder", "TextEncoder", "load_text_encoder"}


def __getattr__(name: str) -> Any:
    if name == "load_encoder":  # dispatches on backend=: torch or ONNX Runtime
        from .embedder import public

        return public.load_encoder
    if name in _LAZY:
        from .models import encoder

        return getattr(encoder, name)
    raise AttributeError(f"module 'lbsearch' has no attribute {name!r}")
