"""CLIP BPE tokenisation as LanguageBind calls it: 77 tokens, EOS kept on truncation, EOS padding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

CONTEXT_LENGTH = 77


@dataclass(frozen=True)
class TokenBatch:
    """Token ids trimmed to the longest text, and where each text's end-of-text token sits."""

    input_ids: torch.Tensor  # (N, L) int64, L <= 77
    eos_positions: torch.Tensor  # (N,) int64


class ClipTokenizer:
    def __init__(self, checkpoint_dir: Path, max_positions: int) -> None:
        self._tokenizer = _load(checkpoint_dir)
        self.context_length = min(CONTEXT_LENGTH, max_positions)

    def __call__(self, texts: list[str]) -> TokenBatch:
        ids = self.full_ids(texts)
        # The reference pools at argmax(input_ids): the first EOS (49407, the largest id; padding
        # repeats it after the real one). Positions after it never influence it (causal mask).
        eos = ids.argmax(dim=1)
        length = int(eos.max()) + 1
        return TokenBatch(input_ids=ids[:, :length], eos_positions=eos)

    def full_ids(self, texts: list[str]) -> torch.Tensor:
        """Untrimmed (N, 77) ids, exactly as the reference tokenizer call gives them."""
        encoded = self._tokenizer(
            texts,
            max_length=self.context_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )
        return encoded["input_ids"].to(torch.int64)


def _load(checkpoint_dir: Path) -> Any:
    has_files = (checkpoint_dir / "tokenizer.json").is_file() or (
        (checkpoint_dir / "vocab.json").is_file() and (checkpoint_dir / "merges.txt").is_file()
    )
    if not has_files:
        raise CheckpointError(
            f"{checkpoint_dir}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)",
            "re-download the checkpoint with `lbsearch pull` or copy its tokenizer files there",
        )
    from transformers import CLIPTokenizer

    try:
        return CLIPTokenizer.from_pretrained(str(checkpoint_dir))
    except Exception as exc:  # transformers raises many types for unreadable tokenizer files
        raise CheckpointError(
            f"{checkpoint_dir}: cannot load the tokenizer: {exc}",
            "the tokenizer files are damaged; re-download the checkpoint",
        ) from exc
