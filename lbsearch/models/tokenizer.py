"""CLIP BPE tokenisation as LanguageBind calls it: 77 tokens, EOS kept on truncation, EOS padding.

Built on the `tokenizers` library from the checkpoint's own vocabulary and merges, with CLIP's
pipeline set up here: NFC, whitespace runs to one space, lower case; CLIP's word pattern, then
byte-level symbols; BPE with `</w>` word ends; `<|startoftext|>` ... `<|endoftext|>` around each
text. That is the pipeline transformers' CLIPTokenizer builds (it, too, keeps only the vocabulary
and merges of a tokenizer.json), so the ids are the same without importing transformers or torch,
which a cold text query cannot afford (about 1.3 s and 1.9 s). A text of plain printable ASCII (a
typical query) is tokenized in Python instead (`clip_bpe`), the same ids without building the
`tokenizers` model, which is then built only for a text that needs it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from .clip_bpe import PlainBpe, Table, is_plain
from .compact_vocabulary import read_tables, sources_key, write_tables

CONTEXT_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's word pattern: special tokens, English contractions, letter runs, single digits, and runs of
# anything else that is not a space.
_WORD_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


@dataclass(frozen=True)
class TokenBatch:
    """Token ids trimmed to the longest text, and where each text's end-of-text token sits."""

    input_ids: np.ndarray  # (N, L) int64, L <= 77
    eos_positions: np.ndarray  # (N,) int64


class ClipTokenizer:
    """Plain ASCII texts (a typical query) through `PlainBpe`, any other through the
    `tokenizers` pipeline, built on first need: the same ids either way."""

    def __init__(
        self, checkpoint_dir: Path, max_positions: int, tables_dir: Path | None = None
    ) -> None:
        """`tables_dir`: a folder of the user cache that keeps a checked compact copy of the
        vocabulary and merges (`compact_vocabulary`), read in a few ms where the checkpoint's
        files take 75-100 ms to read and check; None reads the files every time."""
        self.context_length = min(CONTEXT_LENGTH, max_positions)
        self._dir = checkpoint_dir
        self._files: tuple[dict[str, int], list[str]] | None = None
        vocab, ranks = self._tables(tables_dir)
        self.start_id = vocab.get(BOS, -1)  # every row's first id (checked present)
        self._plain = PlainBpe(vocab, ranks, self.start_id, vocab.get(EOS, -1), str(self._dir))
        self._pipeline: Any = None
        self._building = threading.Lock()

    def _tables(self, tables_dir: Path | None) -> tuple[Table, Table]:
        """token -> id and "left right" -> merge rank, from the compact copy where one is kept."""
        key = sources_key(_vocabulary_files(self._dir)) if tables_dir is not None else None
        kept = read_tables(tables_dir, key) if tables_dir is not None and key else None
        if kept is not None:
            _check_special_tokens(self._dir, kept.vocab)
            return kept.vocab, kept.ranks
        vocab, merges = self._checked_files()
        ranks = {merge: rank for rank, merge in enumerate(merges)}
        if tables_dir is not None and key:
            write_tables(tables_dir, key, vocab, ranks)
        return vocab, ranks

    def _checked_files(self) -> tuple[dict[str, int], list[str]]:
        """The vocabulary and merges read from the checkpoint's files, and checked."""
        if self._files is None:
            vocab, merges = _read_vocabulary(self._dir)
            _check_special_tokens(self._dir, vocab)
            _check_merges(self._dir, vocab, merges)
            self._files = vocab, merges
        return self._files

    def __call__(self, texts: list[str]) -> TokenBatch:
        ids = self.full_ids(texts)
        # The reference pools at argmax(input_ids): the first EOS (49407, the largest id; padding
        # repeats it after the real one). Positions after it never influence it (causal mask).
        eos = ids.argmax(axis=1) if len(ids) else np.zeros(0, dtype=np.int64)
        length = int(eos.max()) + 1 if len(ids) else 0
        return TokenBatch(input_ids=ids[:, :length], eos_positions=eos.astype(np.int64))

    def full_ids(self, texts: list[str]) -> np.ndarray:
        """Untrimmed (N, 77) int64 ids, exactly as the reference tokenizer call gives them."""
        # One text at a time: encode_batch would start tokenizers' thread pool for a handful of
        # short texts, and a process that forks after using it (the indexer's decode workers)
        # gets a warning on stderr and loses the pool.
        rows = [self._ids(text) for text in texts]
        if not rows:
            return np.zeros((0, self.context_length), dtype=np.int64)
        return np.array(rows, dtype=np.int64)

    def _ids(self, text: str) -> list[int]:
        if is_plain(text):
            return self._plain.ids(text, self.context_length)
        ids: list[int] = self.pipeline().encode(text).ids
        return ids

    def pipeline(self) -> Any:
        """The `tokenizers` pipeline (a `tokenizers.Tokenizer`), built on first use."""
        with self._building:
            if self._pipeline is None:
                vocab, merges = self._checked_files()
                self._pipeline = _load(self._dir, self.context_length, vocab, merges)
            return self._pipeline


def _load(
    checkpoint_dir: Path, context_length: int, vocab: dict[str, int], merges: list[str]
) -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    try:
        model = BPE(
            vocab=vocab,
            merges=[_pair(merge) for merge in merges],
            unk_token=EOS,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
        )
    except Exception as exc:  # tokenizers raises its own Exception type for bad merges
        raise CheckpointError(
            f"{checkpoint_dir}: the tokenizer merges do not fit its vocabulary: {exc}",
            "the tokenizer files are damaged; re-download the checkpoint",
        ) from exc
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    flags = _special_token_flags(checkpoint_dir)
    tokenizer.add_special_tokens(
        [
            AddedToken(t, special=True, **{"normalized": False, **flags.get(t, {})})
            for t in (BOS, EOS)
        ]
    )
    tokenizer.post_processor = processors.RobertaProcessing(
        (EOS, vocab[EOS]), (BOS, vocab[BOS]), trim_offsets=False, add_prefix_space=False
    )
    tokenizer.enable_truncation(max_length=context_length)
    tokenizer.enable_padding(length=context_length, pad_id=vocab[EOS], pad_token=EOS)
    return tokenizer


_FLAG_NAMES = ("single_word", "lstrip", "rstrip", "normalized")
_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


def _special_token_flags(checkpoint_dir: Path) -> dict[str, dict[str, bool]]:
    """How BOS and EOS match inside a text, as the checkpoint's tokenizer files say.

    By default they match only as typed (`normalized` false); files saved by older transformers
    mark them `normalized`, and then "<|EndOfText|>" in a text also matches after lower-casing.
    transformers reads tokenizer_config.json's added_tokens_decoder, else the token entries of
    special_tokens_map.json or tokenizer_config.json; tokenizer.json's own list it ignores."""
    config = _read_optional_json(checkpoint_dir / "tokenizer_config.json")
    special_map = _read_optional_json(checkpoint_dir / "special_tokens_map.json")
    decoder = config.get("added_tokens_decoder")
    entries = list(decoder.values()) if isinstance(decoder, dict) else []
    entries += [source.get(key) for source in (special_map, config) for key in _SPECIAL_KEYS]
    flags: dict[str, dict[str, bool]] = {}
    for entry in entries:
        if isinstance(entry, dict) and entry.get("content") in (BOS, EOS):
            found = {name: entry[name] for name in _FLAG_NAMES if isinstance(entry.get(name), bool)}
            flags.setdefault(entry["content"], found)
    return flags


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    raw = _read_json(path)
    return raw if isinstance(raw, dict) else {}


def _read_vocabulary(checkpoint_dir: Path) -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merges from tokenizer.json when present, else vocab.json + merges.txt."""
    combined = checkpoint_dir / "tokenizer.json"
    vocab_file, merges_file = checkpoint_dir / "vocab.json", checkpoint_dir / "merges.txt"
    if combined.is_file():
        return _from_tokenizer_json(combined)
    if vocab_file.is_file() and merges_file.is_file():
        return _from_vocab_and_merges(vocab_file, merges_file)
    raise CheckpointError(
        f"{checkpoint_dir}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)",
        "re-download the checkpoint with `lbsearch pull` or copy its tokenizer files there",
    )


def _from_tokenizer_json(path: Path) -> tuple[dict[str, int], list[str]]:
    raw = _read_json(path)
    model = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE":
        raise _damaged(path, "it does not hold a BPE model")
    vocab, merges = model.get("vocab"), model.get("merges")
    if not isinstance(vocab, dict) or not isinstance(merges, list):
        raise _damaged(path, "its BPE model has no vocab object or merges list")
    # a merge is "left right", or [left, right] in newer files
    joined = [" ".join(m) if _symbol_pair(m) else m for m in merges]
    return vocab, _checked_pairs(joined, path)


def _from_vocab_and_merges(vocab_file: Path, merges_file: Path) -> tuple[dict[str, int], list[str]]:
    vocab = _read_json(vocab_file)
    if not isinstance(vocab, dict):
        raise _damaged(vocab_file, "it is not a JSON object of token ids")
    try:
        lines = merges_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _damaged(merges_file, str(exc)) from exc
    # The first line is a "#version" header; blank lines carry nothing.
    pairs = [line for line in lines if line and not line.startswith("#version")]
    return vocab, _checked_pairs(pairs, merges_file)


def _checked_pairs(merges: list[Any], path: Path) -> list[str]:
    """The merges as "left right" strings; each must be two symbols (one space between)."""
    for merge in merges:
        if (
            not isinstance(merge, str)
            or merge.count(" ") != 1
            or merge[0] == " "
            or merge[-1] == " "
        ):
            raise _damaged(path, f"merge {merge!r} is not a pair of symbols")
    return merges


def _symbol_pair(merge: Any) -> bool:
    return isinstance(merge, list) and len(merge) == 2 and all(isinstance(m, str) for m in merge)


def _vocabulary_files(checkpoint_dir: Path) -> list[Path]:
    """The files `_read_vocabulary` reads (the same test picks them: the copy is keyed by
    the files actually read)."""
    combined = checkpoint_dir / "tokenizer.json"
    if combined.is_file():
        return [combined]
    return [checkpoint_dir / "vocab.json", checkpoint_dir / "merges.txt"]


def _check_special_tokens(checkpoint_dir: Path, vocab: Table) -> None:
    missing = [t for t in (BOS, EOS) if t not in vocab]
    if missing:
        raise CheckpointError(
            f"{checkpoint_dir}: the tokenizer vocabulary has no {missing[0]!r} token",
            "these are not CLIP tokenizer files; re-download the checkpoint",
        )


def _check_merges(checkpoint_dir: Path, vocab: dict[str, int], merges: list[str]) -> None:
    """Every merge makes a token of the vocabulary (as `tokenizers` requires of its model)."""
    outside = next((m for m in merges if m.replace(" ", "") not in vocab), None)
    if outside is not None:
        raise CheckpointError(
            f"{checkpoint_dir}: the tokenizer merges do not fit its vocabulary: merge {outside!r} "
            "makes a token that is not in it",
            "the tokenizer files are damaged; re-download the checkpoint",
        )


def _pair(merge: str) -> tuple[str, str]:
    left, right = merge.split(" ")
    return left, right


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, str(exc)) from exc


def _damaged(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: cannot read the tokenizer: {problem}",
        "the tokenizer files are damaged; re-download the checkpoint",
    )
