"""The hubness bias columns of an index, and the reference banks they are computed from.

Nearest Neighbor Normalization: a segment's bias is the mean of its `k` best similarities to a
bank of reference queries. There are two banks, one per kind of query: generic captions embedded
with the modality's text tower (text queries), and a fixed random sample of the library's own
stored segments of every modality (`FileSample`: example-file queries, which may be of any
modality). The index holds each segment as [v, b_text, b_file] and a query as [q, -alpha, 0]
(text) or [q, 0, -alpha] (file), so FAISS scores `q.v - alpha * bias` with no re-ranking pass.
A bias depends only on the stored vector and the bank, so any rebuild or repair recomputes it
from the catalog's vectors without re-embedding.

The banks live in the library folder (`vectors/<modality>.bank`, `vectors/files.sample`, written
atomically), so every process (a writer's recovery, a reader's repair) computes the same biases.
Their fingerprints (model, captions, k; the sample's segment ids, models and k) are in each index
file's trailer: an index built with another bank or sample is rebuilt.
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

from .kinds import BiasKind

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


def segment_biases(
    bank: np.ndarray,
    vectors: np.ndarray,
    k: int,
    ids: np.ndarray | None = None,
    bank_ids: np.ndarray | None = None,
) -> np.ndarray:
    """Mean of the top-k of `vectors @ bank.T` per row, in chunks (bounded memory). With `ids`
    and `bank_ids` a row's own entry in the bank (a sampled segment) is left out: its
    similarity 1 to itself says nothing about how central it is."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    exclude = ids is not None and bank_ids is not None and len(bank) > 1
    k = max(1, min(k, len(bank) - 1 if exclude else len(bank)))
    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), _CHUNK):
        sims = vectors[start : start + _CHUNK] @ bank.T
        if exclude:
            assert ids is not None and bank_ids is not None
            own = np.asarray(ids[start : start + _CHUNK])[:, None] == bank_ids[None, :]
            sims[own] = -np.inf
        top = np.partition(sims, len(bank) - k, axis=1)[:, len(bank) - k :]
        out[start : start + _CHUNK] = top.mean(axis=1)
    return out


def with_bias(
    vectors: np.ndarray,
    biases: np.ndarray | None,
    width: int,
    file_biases: np.ndarray | None = None,
) -> np.ndarray:
    """(n, width) rows [v, b_text, b_file, 0...] (a bias 0 where None) as the index stores
    them."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    rows = np.zeros((len(vectors), width), dtype=np.float32)
    rows[:, : vectors.shape[1]] = vectors
    if biases is not None:
        rows[:, vectors.shape[1]] = biases
    if file_biases is not None:
        rows[:, vectors.shape[1] + 1] = file_biases
    return rows


def query_with_bias(
    queries: np.ndarray, alpha: float, width: int, kind: BiasKind = BiasKind.TEXT
) -> np.ndarray:
    """(nq, width) rows [q, -alpha, 0...] (text) or [q, 0, -alpha, 0...] (file): their inner
    product with [v, b_text, b_file, 0...] is q.v - alpha * (that kind's bias)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    rows = np.zeros((len(queries), width), dtype=np.float32)
    rows[:, : queries.shape[1]] = queries
    rows[:, queries.shape[1] + kind.column] = -alpha
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
    write_atomically(path, {"fingerprint": bank.fingerprint, "k": bank.k}, buffer.getvalue())


def write_atomically(path: Path, head: dict[str, object], payload: bytes) -> None:
    """[8-byte length][JSON head][payload] to a temporary file, fsync, one rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tmp.open("wb") as handle:
            data = json.dumps(head).encode()
            handle.write(len(data).to_bytes(8, "little") + data + payload)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_head(raw: bytes) -> tuple[dict[str, object], bytes]:
    """The JSON head and the payload of a file written by `write_atomically`."""
    length = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8 : 8 + length])
    if not isinstance(head, dict):
        raise ValueError("bad head")
    return head, raw[8 + length :]


def read_bank(path: Path) -> Bank | None:
    """The saved bank; None when missing or unreadable (the index then has no bias)."""
    try:
        head, payload = read_head(path.read_bytes())
        vectors = np.load(io.BytesIO(payload), allow_pickle=False)
        return Bank(str(head["fingerprint"]), vectors.astype(np.float32), int(str(head["k"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None
