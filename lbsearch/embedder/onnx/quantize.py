"""int8 media towers: dynamic quantisation of the weights of every linear layer.

Weights become int8 per output channel; activations are quantised on the fly per batch (uint8),
which needs no calibration data and keeps cosine to float32 around 0.998 on ViT-L. Only MatMul
weights are quantised: the patch convolution and the final projection are a negligible share of
the work and stay float32. Text towers are never quantised: a query's one short text reads every
weight once, so int8 would halve its time (measured on 2 AVX2 cores, the full-size text tower:
20 ms against 40 ms), but at a cosine of 0.9975-0.998 to float32 (7-bit weights there), and the
query vector is what every result is ranked by.

On x86 CPUs without VNNI the u8 x s8 products go through 16-bit intermediates that can saturate;
`reduce_range` (7-bit weights) avoids that at a small accuracy cost, so it is used only there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from .cache import MODEL_FILE, OnnxCacheError

# quantize_dynamic advises running its optional pre-processing (symbolic shape inference and an
# optimisation pass) through `logging.warning`, which configures the root logger of the calling
# process when it has no handler. The advice does not apply: only MatMul weights are quantised.
_ADVICE = "Please consider to run pre-processing before quantization"
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.cache
def cpu_has_vnni() -> bool:
    """True where the CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX).

    Read from /proc/cpuinfo on Linux; elsewhere (ARM, macOS, Windows) False, where reduce_range
    only costs a little accuracy."""
    if sys.platform != "linux":
        return False
    try:
        return vnni_in(Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace"))
    except OSError:
        return False


def vnni_in(cpuinfo: str) -> bool:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in _VNNI_FLAGS)


def quantize_int8(source: Path, target_folder: Path, reduce_range: bool | None = None) -> None:
    """Write the int8 version of the float32 graph `source` as target_folder/model.onnx."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = target_folder / MODEL_FILE
    try:
        with _without_advice():
            quantize_dynamic(  # a path, not a loaded model: that would be copied in memory
                source,
                target,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                reduce_range=cpu_has_vnni() is False if reduce_range is None else reduce_range,
                weight_type=QuantType.QInt8,
                use_external_data_format=True,
            )
    except Exception as exc:  # onnx and the quantiser raise many types, none recoverable here
        raise OnnxCacheError(
            f"{source}: cannot quantise the graph to int8: {exc}",
            "delete the ONNX cache folder and retry, or use dtype float32",
        ) from exc


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_ADVICE)


@contextlib.contextmanager
def _without_advice() -> Iterator[None]:
    root = logging.getLogger()
    # Any handler keeps `logging.warning` from installing its own. The filter drops the advice
    # before handlers see it; other records logged meanwhile reach the placeholder, not stderr.
    placeholder = logging.NullHandler() if not root.handlers else None
    advice = _DropAdvice()
    if placeholder:
        root.addHandler(placeholder)
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)
        if placeholder:
            root.removeHandler(placeholder)
