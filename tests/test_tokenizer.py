"""lbsearch's tokenizer (the `tokenizers` library alone) against transformers' CLIPTokenizer.

Both read the same checkpoint files; the ids must be the same for every kind of text, in both
file layouts a checkpoint may ship (vocab.json + merges.txt, or tokenizer.json alone).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lbsearch.errors import CheckpointError
from lbsearch.models.tokenizer import ClipTokenizer
from lbsearch.testing.tokenizer_files import write_tokenizer_files

EDGE_TEXTS = [
    "a dog barking",
    "",
    " ",
    "   \t\n  ",
    "   lots   of\t\textra \n\n whitespace   around   ",
    "A Photo of THE Eiffel Tower, at Night!! It's 9:30pm... isn't it?",
    "MiXeD CaSe WoRdS and ALLCAPS",
    "Café naïve crème brûlée — 東京タワーの夜景 🐕🎉 Ünïcödé",
    "cafe\u0301 decomposed accents: e\u0301 a\u0300 o\u0308",  # NFD input
    "emoji: 👩‍👩‍👧 🏳️‍🌈 ❤️ 👍🏽 🐕🐕🐕",
    "numbers 0 12 345 6789 3.14159 1,000,000 -42 +7 1e-5 2026-11-30",
    "punctuation!?.,;:'\"()[]{}<>/\\|@#$%^&*_-+=~`",
    "contractions: it's don't they're we've I'm you'll he'd IT'S",
    "curly ‘quotes’ and “double” — en–dash … ellipsis",
    "Ελληνικά ΟΔΟΣ Straße İstanbul ﬁnance ＡＢＣ１２３ Ωmega",
    "العربية עברית हिन्दी ไทย 한국어 中文字符",
    "zero\u200bwidth non\u00a0breaking\u2003em space\u3000ideographic",
    "control\x00chars\x07and\x1bescape",
    "special tokens in text: <|endoftext|> and <|startoftext|> and <|ENDOFTEXT|>",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x " * 100,
    "a very long description of a busy city street at dusk where many people walk past brightly "
    "lit shop windows while cars, buses, bicycles and scooters wait at the crossing, street "
    "musicians play guitar and violin near the fountain, pigeons gather around a bench",
]


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("vocab-files")
    write_tokenizer_files(directory)
    return directory


@pytest.fixture(scope="module")
def json_dir(vocab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokenizer.json alone, as transformers serialises the CLIP tokenizer (released repos ship
    one beside vocab.json and merges.txt)."""
    from transformers import CLIPTokenizer

    directory = tmp_path_factory.mktemp("tokenizer-json")
    CLIPTokenizer.from_pretrained(str(vocab_dir)).save_pretrained(str(directory))
    for name in ("vocab.json", "merges.txt"):
        (directory / name).unlink(missing_ok=True)
    assert (directory / "tokenizer.json").is_file()
    return directory


def _transformers_ids(directory: Path, texts: list[str]) -> np.ndarray:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(directory))
    encoded = tokenizer(
        texts, max_length=77, padding="max_length", truncation=True, return_tensors="np"
    )
    return encoded["input_ids"].astype(np.int64)


@pytest.mark.parametrize("layout", ["vocab_dir", "json_dir"])
def test_ids_equal_transformers_clip_tokenizer(layout: str, request: pytest.FixtureRequest) -> None:
    directory: Path = request.getfixturevalue(layout)
    ours = ClipTokenizer(directory, 77).full_ids(EDGE_TEXTS)
    expected = _transformers_ids(directory, EDGE_TEXTS)
    assert ours.dtype == np.int64 and ours.shape == (len(EDGE_TEXTS), 77)
    for text, row, reference in zip(EDGE_TEXTS, ours, expected, strict=True):
        np.testing.assert_array_equal(row, reference, err_msg=repr(text))


def _added_token(content: str, normalized: bool) -> dict[str, object]:
    return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False}


def _mark_special_tokens(directory: Path, where: str) -> None:
    """Special tokens marked `normalized`, as files saved by older transformers carry them."""
    bos, eos = _added_token("<|startoftext|>", True), _added_token("<|endoftext|>", True)
    if where == "special_tokens_map.json":
        entries = {"bos_token": bos, "eos_token": eos, "unk_token": eos, "pad_token": eos}
        (directory / where).write_text(json.dumps(entries), encoding="utf-8")
        return
    config = json.loads((directory / where).read_text(encoding="utf-8"))
    decoder = {"49406": {**bos, "special": True}, "49407": {**eos, "special": True}}
    config["added_tokens_decoder"] = decoder
    (directory / where).write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.parametrize("where", ["special_tokens_map.json", "tokenizer_config.json"])
def test_special_token_flags_follow_the_tokenizer_files(
    vocab_dir: Path, tmp_path: Path, where: str
) -> None:
    directory = shutil.copytree(vocab_dir, tmp_path / "tokenizer")
    _mark_special_tokens(directory, where)
    texts = ["a <|ENDOFTEXT|> b <|endoftext|> c <|StartOfText|>", "plain text"]
    ours = ClipTokenizer(directory, 77).full_ids(texts)
    np.testing.assert_array_equal(ours, _transformers_ids(directory, texts))
    assert (ours[0, :8] == [49406, 320, 49407, 321, 49407, 322, 49406, 49407]).all()


def test_each_text_alone_equals_the_batch(vocab_dir: Path) -> None:
    tokenizer = ClipTokenizer(vocab_dir, 77)
    batch = tokenizer.full_ids(EDGE_TEXTS)
    alone = np.concatenate([tokenizer.full_ids([t]) for t in EDGE_TEXTS])
    np.testing.assert_array_equal(batch, alone)


def test_truncation_keeps_eos_and_padding_repeats_it(vocab_dir: Path) -> None:
    ids = ClipTokenizer(vocab_dir, 77).full_ids(["word " * 200, "", "a dog"])
    assert ids[0, 0] == 49406 and ids[0, -1] == 49407 and (ids[0, 1:-1] != 49407).all()
    assert ids[1, :2].tolist() == [49406, 49407] and (ids[1, 2:] == 49407).all()
    assert ids[2, :4].tolist() == [49406, 320, 1929, 49407]


def test_batch_trims_to_the_longest_text_and_finds_each_eos(vocab_dir: Path) -> None:
    batch = ClipTokenizer(vocab_dir, 77)(["a dog", "", "a dog barking"])
    assert batch.input_ids.dtype == np.int64 and batch.eos_positions.dtype == np.int64
    assert batch.input_ids.shape == (3, 5)
    assert batch.eos_positions.tolist() == [3, 1, 4]


def test_short_position_tables_shorten_the_context(vocab_dir: Path) -> None:
    ids = ClipTokenizer(vocab_dir, 16).full_ids(["word " * 40])
    assert ids.shape == (1, 16) and ids[0, -1] == 49407


def test_empty_batch(vocab_dir: Path) -> None:
    batch = ClipTokenizer(vocab_dir, 77)([])
    assert batch.input_ids.shape == (0, 0) and batch.eos_positions.shape == (0,)


def test_missing_tokenizer_files_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no tokenizer files") as info:
        ClipTokenizer(tmp_path, 77)
    assert str(tmp_path) in str(info.value)


def test_damaged_tokenizer_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: cannot read the tokenizer"):
        ClipTokenizer(tmp_path, 77)


@pytest.mark.parametrize("merge", [[1, 2], ["a", "b", "c"], "a b c", "ab", 7])
def test_a_merge_that_is_not_two_symbols_names_the_file(tmp_path: Path, merge: object) -> None:
    model = {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [merge]}
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": model}), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"tokenizer\.json: .* is not a pair of symbols"):
        ClipTokenizer(tmp_path, 77)


def test_merges_outside_the_vocabulary_are_reported(vocab_dir: Path, tmp_path: Path) -> None:
    vocab = json.loads((vocab_dir / "vocab.json").read_text(encoding="utf-8"))
    del vocab["th</w>"]
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\nt h</w>\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"merges do not fit its vocabulary"):
        ClipTokenizer(tmp_path, 77)


def test_tokenizing_imports_neither_transformers_nor_torch(vocab_dir: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from lbsearch.models.tokenizer import ClipTokenizer\n"
        f"ids = ClipTokenizer(Path({str(vocab_dir)!r}), 77)(['a dog barking']).input_ids\n"
        "assert ids.shape == (1, 5), ids\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _ascii_texts(count: int, seed: int) -> list[str]:
    """Random texts of printable ASCII and whitespace, weighted toward words, digits,
    contractions and punctuation runs, plus the edge texts that are plain."""
    import random

    from lbsearch.models.clip_bpe import is_plain

    rng = random.Random(seed)
    parts = [
        "dog", "Barking", "THE", "it's", "don't", "we'll", "I'd", "you've", "'S", "''",
        "3.14", "2026-12-07", "1,000", "!!", "?!", "...", "(", ")", "<", "|>", "<|", "&amp;",
        "e-mail", "rock'n'roll", "x", "zz", "aaaa", "qwxyz", "photo", "of", "a", "cat",
        "snow-covered", "a_b", "C++", "#hashtag", "@user", "\\", "/", "`", "~", "'",
    ]  # fmt: skip
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", ""]
    texts = list(EDGE_TEXTS)
    for _ in range(count):
        words = [
            rng.choice(parts)
            if rng.random() < 0.7
            else "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(1, 12)))
            for _ in range(rng.randint(0, 30))
        ]
        texts.append("".join(w + rng.choice(spaces) for w in words))
    return [t for t in texts if is_plain(t)]


@pytest.mark.parametrize("layout", ["vocab_dir", "json_dir"])
def test_plain_texts_get_the_pipelines_ids_without_it(
    layout: str, request: pytest.FixtureRequest
) -> None:
    """The Python BPE a plain ASCII query takes and the `tokenizers` pipeline give the same
    ids (including truncation past 75 pieces), and the pipeline is not built for them."""
    directory: Path = request.getfixturevalue(layout)
    texts = _ascii_texts(3000, seed=7)
    assert len(texts) > 2000 and any(len(t.split()) > 75 for t in texts)  # truncated
    tokenizer = ClipTokenizer(directory, 77)
    plain = tokenizer.full_ids(texts)
    assert tokenizer._pipeline is None
    pipeline = tokenizer.pipeline()
    for text, row in zip(texts, plain, strict=True):
        assert row.tolist() == pipeline.encode(text).ids, repr(text)
    short = ClipTokenizer(directory, 20)  # a shorter position table: truncated sooner
    for text in texts[:300]:
        assert short._ids(text) == short.pipeline().encode(text).ids, repr(text)


def test_which_texts_are_plain() -> None:
    from lbsearch.models.clip_bpe import is_plain

    assert is_plain("a dog barking, it's 9:30!") and is_plain("") and is_plain("tab\tnew\nline")
    for text in ("café", "a <|endoftext|> b", "x\x1cy", "x\x00y", "東京", "\u00a0"):
        assert not is_plain(text), repr(text)


def test_long_words_and_long_texts_tokenize_fast_and_alike(vocab_dir: Path) -> None:
    """A hostile or pasted text (one word of 200,000 letters, a megabyte of short words) must
    not take the Python BPE's quadratic time: a long word goes to `tokenizers`, and words past
    the 75 kept pieces are not tokenized at all."""
    import time

    from lbsearch.models.clip_bpe import is_plain

    tokenizer = ClipTokenizer(vocab_dir, 77)
    blob, many = "ab" * 100_000, "a dog barking " * 80_000
    assert not is_plain(blob) and is_plain(many) and is_plain("x" * 64) and not is_plain("!" * 65)
    started = time.perf_counter()
    ids = tokenizer.full_ids([blob, many, "x" * 64])
    assert time.perf_counter() - started < 10  # quadratic: 0.9 s at 4,000 letters, ~30 min here
    pipeline = tokenizer.pipeline()
    for text, row in zip([blob, many, "x" * 64], ids, strict=True):
        assert row.tolist() == pipeline.encode(text).ids
