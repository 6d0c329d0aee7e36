"""Exported towers running in ONNX Runtime: numpy in, float32 unit rows out. No torch here.

Sessions run one operator at a time (sequential execution) on `threads` intra-op threads, and
their threads sleep when idle instead of spinning: a text query must stay fast while an indexer
holds every core, and a spinning pool would also steal the indexer's cycles between queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UsageError
from ...models.tokenizer import ClipTokenizer
from .cache import OnnxCacheError

PIXELS, IDS, EOS_POSITIONS, VECTORS = "pixels", "input_ids", "eos_positions", "vectors"
TEXT_BATCH = 64
MIN_OPTIMIZED_COSINE = 0.9999  # an optimised graph against the one it was made from, per row


def open_session(
    model: Path, threads: int = 0, quick_start: bool = False, optimize: bool = True
) -> Any:
    """An ONNX Runtime CPU session for `model`; threads 0 lets ONNX Runtime choose (one per core).

    `quick_start` skips pre-packing the weights into the GEMM kernels' layout, most of the cost
    of opening a session: measured on a full-size text tower (2 cores), the session opens in
    0.03 s instead of 0.45 s, and one short text then encodes in about 55 ms instead of 25 ms.
    Worth it for a process that encodes a query or two, not for one that stays up.

    `optimize` False: run the graph as it is (one `save_optimized` wrote is not optimised again).
    """
    return _session(model, _options(threads, quick_start, optimize))


def save_optimized(source: Path, target: Path) -> Any:
    """Optimise the graph `source` once and save it as `target` (weights beside it in
    `target`.data, aligned so that ONNX Runtime memory-maps them); returns the session that
    did it, on the un-optimised graph's results."""
    options = _options(1, quick_start=True, optimize=True)
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", f"{target.name}.data"
    )
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
    )
    return _session(source, options)


def min_cosine(first: Any, second: Any, ids: np.ndarray, eos_positions: np.ndarray) -> float:
    """The lowest cosine between two text sessions' vectors for the same rows."""
    feed = {IDS: ids, EOS_POSITIONS: eos_positions}
    a, b = (np.asarray(s.run([VECTORS], feed)[0], dtype=np.float64) for s in (first, second))
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(((a * b).sum(axis=1) / np.maximum(norms, 1e-12)).min())


def _options(threads: int, quick_start: bool, optimize: bool) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the core never prints
    if quick_start:
        options.add_session_config_entry("session.disable_prepacking", "1")
    return options


def _session(model: Path, options: Any) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types for unreadable graphs
        raise OnnxCacheError(
            f"{model}: ONNX Runtime cannot load the exported tower: {exc}",
            f"delete {model.parent} so that it is exported again",
        ) from exc


@dataclass(frozen=True, eq=False)  # one tower is one session: compared by identity
class OnnxMediaTower:
    """A modality tower: (B, *input_shape) float32 pixels -> (B, dim) float32 unit rows."""

    session: Any  # onnxruntime.InferenceSession
    model_id: str
    input_shape: tuple[int, ...]
    dim: int
    dtype: str  # "float32" | "int8"

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        if pixels.ndim != len(self.input_shape) + 1 or tuple(pixels.shape[1:]) != self.input_shape:
            raise UsageError(
                f"{self.model_id}: input has shape {tuple(pixels.shape)}",
                f"expected (batch, {', '.join(map(str, self.input_shape))})",
            )
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        feed = {PIXELS: np.ascontiguousarray(pixels, dtype=np.float32)}
        return np.asarray(self.session.run([VECTORS], feed)[0], dtype=np.float32)


@dataclass(frozen=True, eq=False)  # one tower is one session: compared by identity
class OnnxTextTower:
    """A text tower with its tokenizer: texts -> (N, dim) float32 unit rows.

    `identity` names the exported weights: equal for checkpoints whose text towers are identical
    (the same digest the torch encoders share towers by)."""

    session: Any  # onnxruntime.InferenceSession
    tokenizer: ClipTokenizer
    model_id: str
    dim: int
    identity: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise UsageError("encode takes a list of texts, not one string", "wrap it: [text]")
        texts = list(texts)
        chunks = [texts[i : i + TEXT_BATCH] for i in range(0, len(texts), TEXT_BATCH)]
        outputs = [self._encode_chunk(chunk) for chunk in chunks]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.dim), dtype=np.float32)

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(texts)
        if not (batch.input_ids[:, 0] == self.tokenizer.start_id).all():
            # the graph takes the start token's states as given (text_graph.py)
            raise UsageError(
                f"{self.model_id}: the tokenizer's rows do not all begin with its start token",
                "report this with the texts; use the torch back-end meanwhile",
            )
        feed = {IDS: batch.input_ids, EOS_POSITIONS: batch.eos_positions}
        return np.asarray(self.session.run([VECTORS], feed)[0], dtype=np.float32)
