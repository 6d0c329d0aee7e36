"""CLIP's byte-pair encoding in plain Python, for texts of printable ASCII.

Building `tokenizers`' BPE model from CLIP's 48,894 merges took ~0.1 s on a 2-core machine, the
largest part of a cold query's tokenizer, to encode a few words. For a text of printable ASCII
and ordinary whitespace, with no special token in it, the pipeline `tokenizer.py` sets up comes
down to this: lower case; split into CLIP's words (letter runs, single digits, English
contractions, runs of other non-space characters); each word's characters as symbols (printable
ASCII bytes are their own byte-level symbols), the last one with `</w>`; merge the adjacent pair
of lowest rank, leftmost first, until none is in the merges (what `tokenizers`' BPE does); look
the symbols up. Any other text goes to `tokenizers`; tests compare both on thousands of texts.
"""

from __future__ import annotations

import re
from typing import Protocol

from ..errors import CheckpointError

# printable ASCII and the whitespace both regex engines agree on (\x1c-\x1f are spaces to
# Python, not to Unicode); "<|" could start a special token, which `tokenizers` matches
_PLAIN = re.compile(r"[\x20-\x7e\t\n\r\x0b\x0c]*")
_WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")
# a word's merges cost its length squared here: a longer one (a pasted blob, a hostile request
# to `serve`) goes to `tokenizers`, whose BPE does not
_LONG_WORD = re.compile(r"[a-zA-Z]{65,}|[^\sa-zA-Z0-9]{65,}")
_WORD_CACHE = 4096


def is_plain(text: str) -> bool:
    """Whether `PlainBpe` tokenizes `text` exactly as the `tokenizers` pipeline does, and fast."""
    return (
        _PLAIN.fullmatch(text) is not None and "<|" not in text and _LONG_WORD.search(text) is None
    )


class Table(Protocol):
    """str -> int look-ups: a dict, or a `compact_vocabulary.SortedTable`."""

    def get(self, key: str, default: int, /) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __len__(self) -> int: ...


class PlainBpe:
    """Token ids of plain texts (`is_plain`): BOS, up to `context_length - 2` word pieces, EOS,
    then EOS as padding to `context_length`, as the reference tokenizer call gives them."""

    def __init__(self, vocab: Table, ranks: Table, bos: int, eos: int, source: str) -> None:
        self._vocab, self._ranks = vocab, ranks  # ranks: "left right" -> merge order
        self._bos, self._eos = bos, eos
        self._source = source  # the files, for errors
        self._words: dict[str, list[int]] = {}

    def ids(self, text: str, context_length: int) -> list[int]:
        room = context_length - 2
        pieces: list[int] = []
        for match in _WORDS.finditer(text.lower()):
            pieces += self._word_ids(match.group())
            if len(pieces) >= room:  # the rest is truncated away: not tokenized at all
                break
        pieces = pieces[:room]
        row = [self._bos, *pieces, self._eos]
        return row + [self._eos] * (context_length - len(row))

    def _word_ids(self, word: str) -> list[int]:
        ids = self._words.get(word)
        if ids is None:
            ids = [self._vocab.get(s, self._eos) for s in self._merged(word)]  # EOS: unknown
            if len(self._words) >= _WORD_CACHE:
                self._words.clear()
            self._words[word] = ids
        return ids

    def _merged(self, word: str) -> list[str]:
        symbols = [*word[:-1], word[-1] + "</w>"]
        ranks = self._ranks
        while len(symbols) > 1:
            best, at = len(ranks), -1
            for i in range(len(symbols) - 1):
                rank = ranks.get(f"{symbols[i]} {symbols[i + 1]}", best)
                if rank < best:
                    best, at = rank, i
            if at < 0:
                break
            merged = symbols[at] + symbols[at + 1]
            if merged not in self._vocab:
                raise CheckpointError(
                    f"{self._source}: the tokenizer merges do not fit its vocabulary "
                    f"(merge {symbols[at]!r} {symbols[at + 1]!r} makes {merged!r}, not in it)",
                    "the tokenizer files are damaged; re-download the checkpoint",
                )
            symbols[at : at + 2] = [merged]
        return symbols
