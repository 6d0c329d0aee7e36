"""A checked copy of a tokenizer's vocabulary and merges, kept in the user cache and read in a
few milliseconds.

Reading CLIP's vocabulary (49,408 tokens) and merges (48,894) from the checkpoint's JSON and text,
checking them and building their dictionaries took 75-100 ms of a cold query's text thread, all
of it holding Python's lock. The compact copy is written once those checks have passed: both
tables sorted, each one block of UTF-8 keys with the packed end offsets and numbers beside it,
looked up by bisection on the bytes, so reading one is a read and three copies (about 1 ms; a
first format, split into ~98,000 strings on reading, took 9-15 ms). A copy is named after the
identity of the files it was made from (path, size, modification and change times, inode): an
edited or re-downloaded file is read and checked again. A copy that does not read back whole
(truncated, damaged, another format) is ignored; the tokenizer then reads the checkpoint's files
as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import sys
import time
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FORMAT = 2
_MAGIC = b"lbsearch-clip-tables"
_KEEP = 16  # copies kept in the folder (one per tokenizer a user's checkpoints carry)
_DRAFT_AGE_S = 3600  # a draft this old was left by a process that died writing it
_SEEN = 100_000  # look-ups remembered by a table


class _Unseen:
    """A look-up not made yet (None: made, and not found)."""


_UNSEEN = _Unseen()


class SortedTable:
    """A read-only str -> int table over sorted keys: what `PlainBpe` asks of a dict. The keys
    are one block of UTF-8 (whose byte order is the code points' order, as `sorted` gives),
    key i ending at `ends[i]`."""

    __slots__ = ("_blob", "_ends", "_seen", "_values")

    def __init__(self, blob: bytes, ends: array[int], values: array[int]) -> None:
        self._blob, self._ends, self._values = blob, ends, values
        self._seen: dict[str, int | None] = {}  # BPE asks for the same pairs at every merge

    @classmethod
    def of(cls, table: dict[str, int]) -> SortedTable:
        names = sorted(table)
        keys = [name.encode("utf-8") for name in names]
        ends = array("I", itertools.accumulate(len(key) for key in keys))
        return cls(b"".join(keys), ends, array("i", [table[name] for name in names]))

    def get(self, key: str, default: int) -> int:
        found = self._lookup(key)
        return default if found is None else found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not None

    def __len__(self) -> int:
        return len(self._values)

    def _lookup(self, key: str) -> int | None:
        found = self._seen.get(key, _UNSEEN)  # one call: safe against another thread's clear()
        if isinstance(found, _Unseen):
            if len(self._seen) >= _SEEN:  # a long-lived process: bounded
                self._seen.clear()
            found = self._seen[key] = self._find(key)
        return found

    def _find(self, key: str) -> int | None:
        try:
            wanted = key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: never a key of a JSON vocabulary
            return None
        at = bisect_left(range(len(self._values)), wanted, key=self._key)
        if at < len(self._values) and self._key(at) == wanted:
            return self._values[at]
        return None

    def _key(self, index: int) -> bytes:
        return self._blob[self._ends[index - 1] if index else 0 : self._ends[index]]

    @property
    def key_bytes(self) -> int:
        return len(self._blob)

    def packed(self) -> bytes:
        """The table as `_table` reads it back: keys, end offsets, numbers."""
        return self._blob + self._ends.tobytes() + self._values.tobytes()


@dataclass(frozen=True)
class CompactTables:
    vocab: SortedTable  # token -> id
    ranks: SortedTable  # "left right" -> merge order


def sources_key(files: Sequence[Path]) -> str | None:
    """The name of the copy made from `files`; None when one cannot be read."""
    try:
        stats = [(str(f.resolve()), f.stat()) for f in files]
    except OSError:
        return None
    identity: list[object] = [FORMAT, sys.byteorder]
    for path, st in stats:
        identity += [path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    return hashlib.sha256(repr(identity).encode()).hexdigest()[:32]


def read_tables(folder: Path, key: str) -> CompactTables | None:
    """The copy named `key`, or None where there is none that reads back whole."""
    try:
        data = (folder / f"{key}.tables").read_bytes()
    except OSError:
        return None
    head, _, body = data.partition(b"\n")
    fields = head.split()
    if len(fields) != 7 or fields[0] != _MAGIC or fields[1] != str(FORMAT).encode():
        return None
    try:
        tokens, merges, token_bytes, merge_bytes, crc = (int(f) for f in fields[2:])
    except ValueError:
        return None
    if len(body) != token_bytes + merge_bytes + 8 * (tokens + merges) or zlib.crc32(body) != crc:
        return None
    vocab, rest = _table(body, token_bytes, tokens)
    ranks, _ = _table(rest, merge_bytes, merges)
    if vocab is None or ranks is None:
        return None
    return CompactTables(vocab, ranks)


def write_tables(folder: Path, key: str, vocab: dict[str, int], ranks: dict[str, int]) -> None:
    """Save the copy named `key` of these checked tables; a folder that cannot be written, or a
    key that is not valid Unicode (never in CLIP's files), leaves no copy, and nothing else
    changes."""
    if array("i").itemsize != 4 or array("I").itemsize != 4:
        return
    try:
        tokens, merges = SortedTable.of(vocab), SortedTable.of(ranks)
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: no copy, read as before
        return
    body = tokens.packed() + merges.packed()
    head = b" ".join(
        [_MAGIC, str(FORMAT).encode()]
        + [str(n).encode() for n in (len(vocab), len(ranks), tokens.key_bytes, merges.key_bytes)]
        + [str(zlib.crc32(body)).encode()]
    )
    target = folder / f"{key}.tables"
    draft = folder / f".{key}.{os.getpid()}.draft"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        draft.write_bytes(head + b"\n" + body)
        draft.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            draft.unlink()
        return
    _prune(folder, target)


def _table(data: bytes, key_bytes: int, count: int) -> tuple[SortedTable | None, bytes]:
    """The table at the start of `data` (its keys, then `count` end offsets and `count`
    numbers), and the rest."""
    ends_end = key_bytes + 4 * count
    values_end = ends_end + 4 * count
    ends, values = array("I"), array("i")
    ends.frombytes(data[key_bytes:ends_end])
    values.frombytes(data[ends_end:values_end])
    if ends.itemsize != 4 or values.itemsize != 4 or (count and ends[-1] != key_bytes):
        return None, b""
    return SortedTable(data[:key_bytes], ends, values), data[values_end:]


def _prune(folder: Path, keep: Path) -> None:
    """Copies beyond the newest `_KEEP` go (their checkpoints' files changed or went away), and
    so do drafts an hour old (a process killed while writing one)."""
    with contextlib.suppress(OSError):
        copies = sorted(folder.glob("*.tables"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in copies[_KEEP:]:
            if old != keep:
                old.unlink(missing_ok=True)
        now = time.time()
        for draft in folder.glob(".*.draft"):
            if now - draft.stat().st_mtime > _DRAFT_AGE_S:
                draft.unlink(missing_ok=True)
