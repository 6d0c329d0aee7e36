"""Load a checkpoint's towers in ONNX Runtime, exporting them into the cache the first time.

A cached tower loads from config.json, the weights file's size and mtime and the cache alone:
neither torch nor transformers is imported, and the weights are not read. Only a missing export
pulls in torch (lbsearch.embedder.onnx.export) and says so through `notify`.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import CheckpointError, UsageError
from ...models.checkpoint import Checkpoint
from ...models.tokenizer import ClipTokenizer
from ...types import Modality
from ..identity import text_tower_identity
from .cache import (
    MODEL_FILE,
    TEXT_GRAPH,
    Notify,
    OnnxCache,
    OnnxCacheError,
    WeightsIdentity,
    cache_root,
    folder_size,
    is_complete,
    publish,
    read_meta,
)
from .quantize import cpu_has_vnni
from .sessions import (
    MIN_OPTIMIZED_COSINE,
    OnnxMediaTower,
    OnnxTextTower,
    min_cosine,
    open_session,
    save_optimized,
)

MEDIA_DTYPES = ("float32", "int8")
_ALIASES = {"fp32": "float32", "float32": "float32", "int8": "int8"}
TABLES = "tokenizers"  # the cache root's folder of the tokenizers' compact tables


def load_onnx_media_tower(
    checkpoint: Checkpoint,
    modality: Modality,
    dtype: str = "float32",
    threads: int = 0,
    notify: Notify | None = None,
    cache_dir: Path | str | None = None,
) -> OnnxMediaTower:
    """`modality`'s tower of `checkpoint` in ONNX Runtime, float32 or with int8 weights."""
    dtype = _media_dtype(dtype)
    _check_modality(checkpoint, modality)
    cache = OnnxCache(cache_dir)
    weights = WeightsIdentity.of(checkpoint)
    key = weights.key(modality.value)
    entry = cache.media_entry(key, dtype)

    def build() -> None:
        _build_media(checkpoint, modality, dtype, cache, weights, notify)

    session = _open(entry, threads, build)
    spec = checkpoint.spec
    return OnnxMediaTower(
        session, checkpoint.model_id, spec.input_shape, spec.projection_dim, dtype
    )


def load_onnx_text_tower(
    checkpoint: Checkpoint,
    threads: int = 0,
    notify: Notify | None = None,
    cache_dir: Path | str | None = None,
    quick_start: bool = False,
) -> OnnxTextTower:
    """The text tower of `checkpoint` (always float32). Checkpoints whose text towers have
    identical weights share one export; keeping one loaded tower per identity is the embedder's
    job (lbsearch.embedder), not this loader's.

    `quick_start`: open in a fraction of the time, encode about 2x slower (see open_session):
    for a one-shot query process."""
    cache = OnnxCache(cache_dir)
    identity = text_tower_identity(checkpoint)  # hashed once per weights file, then cached
    tokenizer = ClipTokenizer(
        checkpoint.directory, checkpoint.spec.text.max_positions, cache_root(cache_dir) / TABLES
    )
    entry = cache.text_entry(identity, checkpoint.spec.text, tokenizer.start_id)

    def build() -> None:
        _build_text(checkpoint, cache, entry, tokenizer.start_id, identity, notify)

    with _export_lock:  # threads of one process export a tower once
        if not is_complete(entry):
            build()
        optimized = cache.optimized_entry(entry)
        session = _open_text(entry, optimized, tokenizer, threads, quick_start)
        if session is None:
            session = _open(entry, threads, build, quick_start)
    dim = checkpoint.spec.projection_dim
    return OnnxTextTower(session, tokenizer, checkpoint.model_id, dim, identity)


_export_lock = threading.Lock()


def _open(entry: Path, threads: int, build: Callable[[], Any], quick_start: bool = False) -> Any:
    """A session on `entry`, built first if missing; a damaged entry is rebuilt once."""
    if not is_complete(entry):
        build()
    try:
        return open_session(entry / MODEL_FILE, threads, quick_start)
    except OnnxCacheError:
        shutil.rmtree(entry, ignore_errors=True)
        build()
        return open_session(entry / MODEL_FILE, threads, quick_start)


def _open_text(
    entry: Path, optimized: Path, tokenizer: ClipTokenizer, threads: int, quick_start: bool
) -> Any:
    """A session on the optimised copy of the text export `entry`, saved the first time; None
    where there is none (it could not be made, or it did not reproduce the export's vectors).
    Either is recorded in its meta.json and not tried again by this ONNX Runtime version."""
    if not read_meta(optimized):  # neither made nor recorded as failed
        try:
            made = publish(optimized, lambda folder: _optimize_text(entry, folder, tokenizer))
        except OnnxCacheError:  # the plain export still works
            return None
        if made:  # copies by other ONNX Runtime versions are of no use to this one
            for older in optimized.parent.glob(f"{entry.name}-ort*"):
                if older != optimized:
                    shutil.rmtree(older, ignore_errors=True)
    if not read_meta(optimized).get("usable"):
        return None
    try:
        return open_session(optimized / MODEL_FILE, threads, quick_start, optimize=False)
    except OnnxCacheError:  # damaged: made again next time
        shutil.rmtree(optimized, ignore_errors=True)
        return None


CHECK_TEXTS = ["a dog barking", "a photo of a sunset over the sea", "x"]


def _optimize_text(entry: Path, folder: Path, tokenizer: ClipTokenizer) -> dict[str, Any]:
    """ONNX Runtime's optimised graph of the export `entry`, kept only if its vectors equal
    the un-optimised graph's (cosine >= MIN_OPTIMIZED_COSINE on every check row)."""
    import onnxruntime

    start = time.perf_counter()
    source, target = entry / MODEL_FILE, folder / MODEL_FILE
    record = {
        "kind": "text-optimized",
        "source": entry.name,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        save_optimized(source, target)
    except OnnxCacheError as exc:
        open_session(source, 1, optimize=False)  # a damaged export raises: no record, rebuilt
        # this ONNX Runtime cannot optimise this graph: recorded, so that each later query
        # opens the plain export at once instead of failing the same way again (seconds)
        return {**record, "usable": False, "error": str(exc), "seconds": _since(start)}
    batch = tokenizer(CHECK_TEXTS)
    plain, optimized = (open_session(path, 1, optimize=False) for path in (source, target))
    cosine = min_cosine(plain, optimized, batch.input_ids, batch.eos_positions)
    usable = cosine >= MIN_OPTIMIZED_COSINE
    if not usable:  # keep the record (not tried again each time), not the weights
        for path in folder.iterdir():
            if path.name != MODEL_FILE:
                path.unlink()
    return {**record, "min_cosine_to_export": cosine, "usable": usable, "seconds": _since(start)}


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 1)


def _build_media(
    checkpoint: Checkpoint,
    modality: Modality,
    dtype: str,
    cache: OnnxCache,
    weights: WeightsIdentity,
    notify: Notify | None,
) -> None:
    key = weights.key(modality.value)
    entry = cache.media_entry(key, dtype)
    what = f"the {modality.value} tower of {checkpoint.model_id}"

    def build(folder: Path) -> dict[str, Any]:
        from .export import export_media, load_media_module

        start = time.perf_counter()
        _say(
            notify,
            f"Exporting {what} to ONNX ({dtype}), once per checkpoint; full-size towers take minutes",
        )
        meta: dict[str, Any] = {"kind": modality.value, "dtype": dtype}
        fp32 = cache.media_entry(key, "float32")
        if dtype == "float32" or not is_complete(fp32):
            target = folder if dtype == "float32" else folder / "float32"
            target.mkdir(exist_ok=True)
            report = export_media(
                load_media_module(checkpoint, modality), checkpoint.spec.input_shape, target
            )
            meta["min_cosine_to_torch"] = report.min_cosine
            fp32 = target
        if dtype == "int8":
            from .quantize import quantize_int8

            reduce_range = not cpu_has_vnni()
            quantize_int8(fp32 / MODEL_FILE, folder, reduce_range)
            shutil.rmtree(folder / "float32", ignore_errors=True)
            meta["reduce_range"] = reduce_range
        meta["export_seconds"] = round(time.perf_counter() - start, 1)
        return {**meta, **_weights_meta(checkpoint, weights, key)}

    if publish(entry, build):
        cache.prune_media(weights.path, keep=key)
        _say_done(notify, what, entry)


def _build_text(
    checkpoint: Checkpoint,
    cache: OnnxCache,
    entry: Path,
    start_id: int,
    identity: str,
    notify: Notify | None,
) -> None:
    what = f"the text tower of {checkpoint.model_id}"

    def build(folder: Path) -> dict[str, Any]:
        from .export import export_text, load_text_module

        _say(notify, f"Exporting {what} to ONNX, once per checkpoint")
        module, fingerprint = load_text_module(checkpoint)
        if fingerprint != identity:  # the weights changed since their identity was recorded
            raise OnnxCacheError(
                f"{checkpoint.weights}: the text weights changed while being read",
                "run the command again",
            )
        report = export_text(module, checkpoint.spec.text, start_id, folder)
        weights = WeightsIdentity.of(checkpoint)
        return {
            "kind": "text",
            "graph": TEXT_GRAPH,
            "dtype": "float32",
            "identity": identity,
            "export_seconds": round(report.seconds, 1),
            "min_cosine_to_torch": report.min_cosine,
            **_weights_meta(checkpoint, weights, weights.key("text")),
        }

    if publish(entry, build):
        cache.prune_text(keep=entry)
        _say_done(notify, what, entry)


def _weights_meta(checkpoint: Checkpoint, weights: WeightsIdentity, key: str) -> dict[str, Any]:
    return {
        "key": key,
        "model_id": checkpoint.model_id,
        "weights": weights.path,
        "weights_size": weights.size,
        "weights_mtime_ns": weights.mtime_ns,
    }


def _media_dtype(dtype: str) -> str:
    if dtype not in _ALIASES:
        raise UsageError(
            f"ONNX Runtime media towers run as float32 or int8, not {dtype!r}",
            "use dtype float32 or int8 with the onnxruntime back-end",
        )
    return _ALIASES[dtype]


def _check_modality(checkpoint: Checkpoint, modality: Modality) -> None:
    if checkpoint.spec.modality is not modality:
        raise CheckpointError(
            f"{checkpoint.directory / 'config.json'}: key 'model_type' is "
            f"{checkpoint.spec.model_type}, a {checkpoint.spec.modality.value} checkpoint, "
            f"not {modality.value}",
            f"use a LanguageBind {modality.value} checkpoint for {modality.value} files",
        )


def _say(notify: Notify | None, message: str) -> None:
    if notify is not None:
        notify(message)


def _say_done(notify: Notify | None, what: str, entry: Path) -> None:
    if notify is not None:
        size_mb = folder_size(entry) / 1e6
        notify(f"Exported {what}: {size_mb:.0f} MB in {entry}")
