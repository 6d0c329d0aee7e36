"""Which checkpoints share a text tower, known without reading their weights twice.

LanguageBind froze the text tower in training, so the released checkpoints of one family carry
identical text weights. A query that searches five modalities should load and run that tower
once. Hashing a full-size text tower costs about a second per checkpoint, so each checkpoint's
digest is computed once and kept in the user cache, keyed by the weights file's path, size and
modification time (a changed file is hashed again).
"""

from __future__ import annotations

import contextlib
import threading

from ..models.checkpoint import Checkpoint
from .cache import cache_dir, read_json, write_json_atomically

_FILE = "text-towers.json"
_lock = threading.Lock()


def text_tower_identity(checkpoint: Checkpoint) -> str:
    """A digest of the text tower's weights: equal digests mean interchangeable towers."""
    weights = checkpoint.weights
    stat = weights.stat()
    key = f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    path = cache_dir() / _FILE
    with _lock:
        known = read_json(path)
        if isinstance(known.get(key), str):
            return str(known[key])
        digest = _digest(checkpoint)
        known = read_json(path)  # another process may have added entries meanwhile
        known[key] = digest
        with contextlib.suppress(OSError):  # a read-only cache costs the hash again next time
            write_json_atomically(path, known)
        return digest


def _digest(checkpoint: Checkpoint) -> str:
    from ..models.weights import TEXT_PREFIXES, fingerprint, read_tensors

    return fingerprint(read_tensors(checkpoint.weights, TEXT_PREFIXES).items())
