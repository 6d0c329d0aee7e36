"""A checked copy of a tokenizer's vocabulary and merges, kept in the user cache and read in a
few milliseconds.

Reading CLIP's vocabulary (49,408 tokens) and merges (48,894) from the checkpoint's JSON and text,
checking them and building their dictionaries took 75-100 ms of a cold query's text thread, all
of it holding Python's lock. The compact copy is written once those checks have passed: both
tables sorted, as lines of UTF-8 with their numbers packed beside them, looked up by bisection,
so reading one is a read, a decode and a split. A copy is named after the identity of the files
it was made from (path, size, modification and change times, inode): an edited or re-downloaded
file is read and checked again. A copy that does not read back whole (truncated, damaged, another
format) is ignored; the tokenizer then reads the checkpoint's files as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1
_MAGIC = b"lbsearch-clip-tables"
_KEEP = 16  # copies kept in the folder (one per tokenizer a user's checkpoints carry)
_DRAFT_AGE_S = 3600  # a draft this old was left by a process that died writing it


class SortedTable:
    """A read-only str -> int table over sorted keys: what `PlainBpe` asks of a dict."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: list[str], values: array[int]) -> None:
        self._keys, self._values = keys, values

    def get(self, key: str, default: int) -> int:
        at = bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            return self._values[at]
        return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, -1) >= 0

    def __len__(self) -> int:
        return len(self._keys)


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
    if len(body) != token_bytes + merge_bytes + 4 * (tokens + merges) or zlib.crc32(body) != crc:
        return None
    vocab, rest = _table(body, token_bytes, tokens)
    ranks, _ = _table(rest, merge_bytes, merges)
    if vocab is None or ranks is None:
        return None
    return CompactTables(vocab, ranks)


def write_tables(folder: Path, key: str, vocab: dict[str, int], ranks: dict[str, int]) -> None:
    """Save the copy named `key` of these checked tables; a folder that cannot be written, or a
    key with a line break (never in CLIP's files), leaves no copy, and nothing else changes."""
    tokens, merges = _pack(vocab), _pack(ranks)
    if tokens is None or merges is None or array("i").itemsize != 4:
        return
    body = b"".join([*tokens, *merges])
    head = b" ".join(
        [_MAGIC, str(FORMAT).encode()]
        + [str(n).encode() for n in (len(vocab), len(ranks), len(tokens[0]), len(merges[0]))]
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
    """The table at the start of `data` (its keys, then `count` packed numbers), and the rest."""
    keys_end, values_end = key_bytes, key_bytes + 4 * count
    try:
        keys = data[:keys_end].decode("utf-8").split("\n") if count else []
    except UnicodeDecodeError:
        return None, b""
    values = array("i")
    values.frombytes(data[keys_end:values_end])
    if len(keys) != count or values.itemsize != 4:
        return None, b""
    return SortedTable(keys, values), data[values_end:]


def _pack(table: dict[str, int]) -> tuple[bytes, bytes] | None:
    keys = sorted(table)
    if any("\n" in key for key in keys):
        return None
    return "\n".join(keys).encode("utf-8"), array("i", [table[k] for k in keys]).tobytes()


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
