"""CLIP BPE tokenizer files (vocab.json, merges.txt) built from the committed merge list.

The merge list is the first 48,894 merges of OpenAI CLIP's BPE vocabulary, the same list every
LanguageBind checkpoint ships; vocab.json follows from it: 256 byte symbols, the same with `</w>`,
one entry per merge, then the two special tokens (49,408 entries).
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408


def merges_text() -> str:
    data = resources.files("lbsearch.testing.data").joinpath("clip_bpe_merges.txt.gz").read_bytes()
    return gzip.decompress(data).decode("utf-8")


def byte_symbols() -> list[str]:
    """GPT-2/CLIP byte-to-unicode table: printable bytes map to themselves, the rest above 255."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    extra = [b for b in range(256) if b not in printable]
    codes = printable + [256 + i for i in range(len(extra))]
    return [chr(c) for c in codes]


def vocabulary() -> dict[str, int]:
    merges = [line for line in merges_text().splitlines()[1:] if line]
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges]
    tokens += [BOS, EOS]
    assert len(tokens) == VOCAB_SIZE, len(tokens)
    return {token: index for index, token in enumerate(tokens)}


def write_tokenizer_files(directory: Path, tokenizer_class: str = "CLIPTokenizer") -> None:
    """The tokenizer files of a released LanguageBind repo (slow-tokenizer form)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocabulary(), ensure_ascii=False), "utf-8")
    (directory / "merges.txt").write_text(merges_text(), "utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
    config = {
        **special,
        "tokenizer_class": tokenizer_class,
        "model_max_length": 77,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), "utf-8")
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2), "utf-8")
