"""How towers run: back-end, device, dtype and batch sizes, resolved from "auto" without torch.

Resolving must stay cheap: the cold query path on ONNX Runtime never imports torch, so "auto"
looks for an accelerator in the operating system rather than asking torch. The rules here are
what "auto" does before it has measured (tuner.py): a media tower's first use measures and a
cached decision replaces them.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import RuntimeConfig
from ..errors import UsageError

BACKENDS = ("auto", "torch", "onnxruntime")
TORCH, ONNX = "torch", "onnxruntime"


@dataclass(frozen=True)
class EmbedderOptions:
    backend: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    batch_size: int = 0  # 0: 8 on a CPU, 32 on a GPU
    text_batch_size: int = 64
    threads: int = 0
    # A one-shot process (`lbsearch query`) opens the ONNX text tower without pre-packing its
    # weights: 0.03 s instead of ~0.5 s to open, ~30 ms more per text. Warm services keep it off.
    quick_start: bool = False
    # "allow": measured "auto" may choose int8 weights (cosine >= 0.998 to float32, not 0.9999).
    int8: str = "deny"

    @classmethod
    def from_runtime(
        cls,
        runtime: RuntimeConfig,
        *,
        backend: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        quick_start: bool = False,
    ) -> EmbedderOptions:
        """The [runtime] settings, with command-line flags (when given) taking precedence."""
        options = cls(
            backend=backend or runtime.backend,
            device=device or runtime.device,
            dtype=dtype or runtime.dtype,
            attention=runtime.attention,
            batch_size=runtime.batch_size,
            text_batch_size=runtime.text_batch_size,
            threads=runtime.threads,
            quick_start=quick_start,
            int8=runtime.int8,
        )
        options.check()
        return options

    def check(self) -> None:
        if self.int8 not in ("deny", "allow"):
            raise UsageError(
                f"[runtime] int8 = {self.int8!r} is not a choice",
                'use "allow" (measured auto may pick int8 weights) or "deny"',
            )
        if self.backend not in BACKENDS:
            raise UsageError(
                f"unknown backend {self.backend!r}", f"use one of: {', '.join(BACKENDS)}"
            )
        if self.dtype in ("int8", "qint8") and self.backend == TORCH:
            raise UsageError(
                "dtype int8 runs on ONNX Runtime only",
                "use --backend onnxruntime (or auto) with --dtype int8",
            )
        if self.backend == ONNX and self.dtype not in ("auto", "float32", "fp32", "int8", "qint8"):
            raise UsageError(
                f"the onnxruntime back-end runs float32 or int8, not {self.dtype}",
                "use --dtype float32 or --dtype int8 with --backend onnxruntime",
            )
        if self.backend == ONNX and self.device not in ("auto", "cpu"):
            raise UsageError(
                f"the onnxruntime back-end runs on the CPU, not on {self.device!r}",
                "use --backend torch for a GPU, or --device cpu",
            )

    def with_overrides(self, **changes: object) -> EmbedderOptions:
        return replace(self, **changes)  # type: ignore[arg-type]

    def tunes(self) -> bool:
        """True when "auto" leaves a choice to measure (the back-end or the dtype); int8 asked
        for is ONNX Runtime int8, nothing to choose."""
        return (self.backend == "auto" or self.dtype == "auto") and not self.is_int8

    @property
    def is_int8(self) -> bool:
        return self.dtype in ("int8", "qint8")

    def media_backend(self) -> str:
        """torch for media towers unless told otherwise or int8 is asked (ONNX Runtime only).

        Measured on 2-core CPUs: ONNX Runtime fp32 is no faster than torch fp32 for the media
        towers, and an exported ViT-L costs ~1.2 GB of cache per tower."""
        if self.backend != "auto":
            return self.backend
        return ONNX if self.is_int8 else TORCH

    def text_backend(self) -> str:
        """ONNX Runtime for the text tower on CPUs (a cold query skips importing torch), torch
        where an accelerator runs the towers."""
        if self.backend != "auto":
            return self.backend
        return TORCH if self._accelerator() else ONNX

    def media_dtype(self) -> str:
        return "int8" if self.is_int8 else self.dtype

    def text_dtype(self) -> str:
        """Text towers stay at full precision under int8 (they are small and run once a query)."""
        return "float32" if self.is_int8 else self.dtype

    def batch_size_for(self, device_type: str) -> int:
        if self.batch_size > 0:
            return self.batch_size
        return 8 if device_type == "cpu" else 32

    def _accelerator(self) -> bool:
        if self.device != "auto":
            return not self.device.startswith("cpu")
        return accelerator_present()


def accelerator_present() -> bool:
    """An NVIDIA device node, or Apple silicon (MPS): where "auto" would put towers off the CPU."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()
