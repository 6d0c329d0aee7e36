"""The hubness bias column of an index, and the reference bank it is computed from.

Nearest Neighbor Normalization: a segment's bias is the mean of its `k` best similarities to a
bank of reference queries (generic captions embedded with the modality's text tower). The index
holds each segment as [v, bias] and a query as [q, -alpha], so FAISS scores `q.v - alpha * bias`
with no re-ranking pass. A bias depends only on the stored vector and the bank, so any rebuild or
repair recomputes it from the catalog's vectors without re-embedding.

The bank lives in the library folder (`vectors/<modality>.bank`, written atomically), so every
process (a writer's recovery, a reader's repair) computes the same biases. Its fingerprint (model,
captions, k) is in each index file's trailer: an index built with another bank is rebuilt.
The null moments measured with the bank (`null_moments`) go in the index file's trailer: they
describe the library as indexed, and the search layer derives each modality's calibration.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NO_BIAS = ""  # the fingerprint of an index built without a bank: every bias is 0
_CHUNK = 4096


@dataclass(frozen=True)
class Bank:
    """Reference query vectors (m, d) for one modality's index, and the k of its biases."""

    fingerprint: str
    vectors: np.ndarray
    k: int

    def biases(self, vectors: np.ndarray) -> np.ndarray:
        """(n,) mean of each row's k best similarities to the bank."""
        return segment_biases(self.vectors, vectors, self.k)


def bank_fingerprint(model_id: str, captions_sha: str, k: int) -> str:
    """What identifies a bias column: the text tower's model, the captions and k."""
    return hashlib.sha256(f"{model_id}\n{captions_sha}\n{k}".encode()).hexdigest()[:16]


def segment_biases(bank: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Mean of the top-k of `vectors @ bank.T` per row, in chunks (bounded memory)."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    k = max(1, min(k, len(bank)))
    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), _CHUNK):
        sims = vectors[start : start + _CHUNK] @ bank.T
        top = np.partition(sims, len(bank) - k, axis=1)[:, len(bank) - k :]
        out[start : start + _CHUNK] = top.mean(axis=1)
    return out


def with_bias(vectors: np.ndarray, biases: np.ndarray | None, width: int) -> np.ndarray:
    """(n, width) rows [v, bias, 0...] (bias 0 where None) as the index stores them."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    rows = np.zeros((len(vectors), width), dtype=np.float32)
    rows[:, : vectors.shape[1]] = vectors
    if biases is not None:
        rows[:, vectors.shape[1]] = biases
    return rows


def query_with_bias(queries: np.ndarray, alpha: float, width: int) -> np.ndarray:
    """(nq, width) rows [q, -alpha, 0...]: their inner product with [v, b, 0...] is
    q.v - alpha * b."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    rows = np.zeros((len(queries), width), dtype=np.float32)
    rows[:, : queries.shape[1]] = queries
    rows[:, queries.shape[1]] = -alpha
    return rows


def null_moments(queries: np.ndarray, sample: np.ndarray, biases: np.ndarray) -> list[float]:
    """[E s, E b, Var s, Var b, Cov(s, b)] over every (query, sample segment) pair, s = q.v.

    Moments rather than a mean and deviation, so the null of `s - alpha * b` follows for any
    alpha: mean = Es - a Eb, variance = Vs + a^2 Vb - 2a Cov."""
    if not len(queries) or not len(sample):
        return []
    s = (np.asarray(queries, np.float32) @ np.asarray(sample, np.float32).T).astype(np.float64)
    b = np.broadcast_to(biases.astype(np.float64)[None, :], s.shape)
    ms, mb = float(s.mean()), float(b.mean())
    cov = float(((s - ms) * (b - mb)).mean())
    return [ms, mb, float(s.var()), float(b.var()), cov]


# ----------------------------------------------------------------------------- the bank file


def bank_path(directory: Path, modality: str) -> Path:
    return directory / f"{modality}.bank"


def write_bank(path: Path, bank: Bank) -> None:
    """Save the bank with one atomic rename (a crash leaves the old bank or the new one)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(bank.vectors, dtype=np.float32))
    head = json.dumps({"fingerprint": bank.fingerprint, "k": bank.k})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tmp.open("wb") as handle:
            data = head.encode()
            handle.write(len(data).to_bytes(8, "little") + data + buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_bank(path: Path) -> Bank | None:
    """The saved bank; None when missing or unreadable (the index then has no bias)."""
    try:
        raw = path.read_bytes()
        length = int.from_bytes(raw[:8], "little")
        head = json.loads(raw[8 : 8 + length])
        vectors = np.load(io.BytesIO(raw[8 + length :]), allow_pickle=False)
        return Bank(str(head["fingerprint"]), vectors.astype(np.float32), int(head["k"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
