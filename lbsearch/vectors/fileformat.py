"""The index file format and its atomic save/read helpers.

`vectors/<modality>.faiss` is a plain FAISS index (faiss.read_index reads it) followed by a
trailer: JSON metadata, its length (8 bytes, little endian) and the magic `LBSVEC01`. Index and
metadata share one file, so one atomic `os.replace` swaps both: a crash leaves the old pair or
the new one, never a mix. A file of another format (an older lbsearch's) reads as unusable, and
the library rebuilds it from the catalog's stored vectors (never re-embedding).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from .index import VectorIndex, VectorIndexError
from .plan import IndexKind, IndexPlan, index_dim

MAGIC = b"LBSVEC01"
FORMAT = 3  # 2: one column more than the vectors (the bias, vectors.bias); 3: two (text, file)


@dataclass(frozen=True)
class IndexMeta:
    """The trailer of an index file: which catalog state the index reflects."""

    library_id: str
    modality: str
    generation: int
    count: int
    dim: int  # of the stored vectors; the index has more columns (index.index_dim)
    kind: str
    nlist: int
    pq_m: int
    model_id: str
    saved_at: float
    format: int = FORMAT
    bias: str = ""  # fingerprint of the bank its bias column was computed with ("": none)
    null: dict[str, list[float]] | None = None  # null moments per query kind (vectors.bias)
    file_bias: str = ""  # fingerprint of the library sample of its file-bias column ("": none)

    @property
    def plan(self) -> IndexPlan:
        return IndexPlan(IndexKind(self.kind), self.nlist, self.pq_m)


def write_index_file(path: Path, index: VectorIndex, meta: IndexMeta) -> None:
    """Write to a temporary file beside `path`, fsync, rename over `path`, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            index.write(handle)
            trailer = json.dumps(asdict(meta)).encode()
            handle.write(trailer + len(trailer).to_bytes(8, "little") + MAGIC)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as err:
        raise VectorIndexError(
            f"{path}: cannot save the vector index: {err.strerror or err}",
            "check free space and permissions of the library folder",
        ) from err
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _fsync_dir(path.parent)


def read_index_meta(path: Path) -> IndexMeta | None:
    """The trailer of an index file; None if the file is missing or has no valid trailer."""
    try:
        with path.open("rb") as handle:
            return _read_trailer(handle)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def read_index_file(path: Path, mapped: bool = False) -> tuple[VectorIndex, IndexMeta] | str:
    """The index and its trailer, or why it cannot be used ("missing", "unreadable: ...");
    `mapped`: searched in the file's pages, read-only (VectorIndex.read)."""
    try:
        with path.open("rb") as handle:
            meta = _read_trailer(handle)
            handle.seek(0)
            dim = index_dim(meta.plan, meta.dim)
            index = VectorIndex.read(handle, meta.plan, dim, mapped)
    except FileNotFoundError:
        return "no index file"
    except Exception as err:  # damaged file: FAISS raises RuntimeError, trailers ValueError
        return f"unreadable index file: {str(err).splitlines()[0][:200]}"
    if index.ntotal != meta.count:
        return "index file does not match its own metadata"
    return index, meta


def _read_trailer(handle: BinaryIO) -> IndexMeta:
    end = handle.seek(0, os.SEEK_END)
    if end < 16:
        raise ValueError("file too short for an lbsearch index")
    handle.seek(end - 16)
    tail = handle.read(16)
    if tail[8:] != MAGIC:
        raise ValueError("no lbsearch trailer (not written by lbsearch, or cut short)")
    length = int.from_bytes(tail[:8], "little")
    if length > end - 16:
        raise ValueError("bad trailer length")
    handle.seek(end - 16 - length)
    data = json.loads(handle.read(length))
    if data.get("format") != FORMAT:
        raise ValueError(f"index format {data.get('format')} is not {FORMAT}")
    return IndexMeta(**data)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; its rename is durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_temporary_files(directory: Path) -> int:
    """Remove temporary files left by a process killed while saving (writer lock held)."""
    removed = 0
    for leftover in directory.glob(".*.faiss.*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed
