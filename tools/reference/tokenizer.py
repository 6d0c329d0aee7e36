"""The reference's own slow CLIPTokenizer subclass, its vocabulary rebuilt offline."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
MERGES_GZ = REPO_ROOT / "lbsearch" / "testing" / "data" / "clip_bpe_merges.txt.gz"

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408


def byte_level_symbols() -> list[str]:
    """The 256 byte-level BPE symbols in GPT-2 ``bytes_to_unicode`` order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    remapped = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable]
    symbols += [chr(256 + offset) for offset in range(len(remapped))]
    return symbols


def write_clip_vocab(directory: Path) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` of the CLIP BPE into ``directory``."""
    with gzip.open(MERGES_GZ, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    header, merges = lines[0], [line for line in lines[1:] if line]
    symbols = byte_level_symbols()
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(merge.split(" ")) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != VOCAB_SIZE:
        raise RuntimeError(f"expected {VOCAB_SIZE} vocabulary entries, got {len(tokens)}")
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    vocab_path.write_text(json.dumps({tok: i for i, tok in enumerate(tokens)}), encoding="utf-8")
    merges_path.write_text("\n".join([header, *merges]) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def build_tokenizer(tokenizer_class: type, directory: Path) -> Any:
    vocab_path, merges_path = write_clip_vocab(directory)
    return tokenizer_class(vocab_file=str(vocab_path), merges_file=str(merges_path))


def tokenize(tokenizer: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    batch = tokenizer(
        list(texts),
        max_length=CONTEXT_LENGTH,
        padding="max_length",
        truncation=True,
        return_tensors="np",
    )
    return {key: batch[key].astype(np.int64) for key in ("input_ids", "attention_mask")}
