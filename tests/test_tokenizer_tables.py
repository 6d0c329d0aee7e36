"""The tokenizer's compact tables in the user cache: written once the checkpoint's files have
been checked, read instead of them afterwards, never trusted when stale or damaged."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lbsearch.errors import CheckpointError
from lbsearch.models import tokenizer as tokenizer_module
from lbsearch.models.compact_vocabulary import SortedTable, read_tables, sources_key
from lbsearch.models.tokenizer import ClipTokenizer
from lbsearch.testing.tokenizer_files import write_tokenizer_files

TEXTS = [
    "a dog barking",
    "",
    "A Photo of THE Eiffel Tower, at Night!! It's 9:30pm... isn't it?",
    "snow-covered mountains at dawn, rock'n'roll & C++ #hashtag @user",
    "word " * 90,  # truncated
    "Café naïve 東京タワー 🐕",  # not plain: the `tokenizers` pipeline
    "a <|endoftext|> b",  # a special token: the pipeline
]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    directory = tmp_path / "checkpoint"
    directory.mkdir()
    write_tokenizer_files(directory)
    return directory


def _reading_files_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(directory: Path) -> None:
        raise AssertionError(f"read {directory}'s tokenizer files")

    monkeypatch.setattr(tokenizer_module, "_read_vocabulary", refuse)


def test_the_tables_are_kept_once_and_read_instead_of_the_files(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = tmp_path / "cache" / "tokenizers"
    expected = ClipTokenizer(files, 77).full_ids(TEXTS)  # no tables: the files every time
    first = ClipTokenizer(files, 77, tables)
    np.testing.assert_array_equal(first.full_ids(TEXTS), expected)
    assert len(list(tables.glob("*.tables"))) == 1 and not list(tables.glob(".*"))
    with monkeypatch.context() as patched:
        _reading_files_fails(patched)
        kept = ClipTokenizer(files, 77, tables)
        np.testing.assert_array_equal(kept.full_ids(TEXTS[:5]), expected[:5])
    # a text that needs the `tokenizers` pipeline builds it from the files, as before
    np.testing.assert_array_equal(kept.full_ids(TEXTS), expected)
    short = ClipTokenizer(files, 20, tables)  # the tables do not depend on the context length
    np.testing.assert_array_equal(short.full_ids(TEXTS), ClipTokenizer(files, 20).full_ids(TEXTS))


def test_a_changed_file_is_read_again(files: Path, tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    before = ClipTokenizer(files, 77, tables).full_ids(["a dog"])
    vocab = json.loads((files / "vocab.json").read_text(encoding="utf-8"))
    vocab["dog</w>"], vocab["a</w>"] = vocab["a</w>"], vocab["dog</w>"]  # new ids
    # one more byte: the identity changes even where file times are coarse
    (files / "vocab.json").write_text(json.dumps(vocab) + " ", encoding="utf-8")
    after = ClipTokenizer(files, 77, tables).full_ids(["a dog"])
    assert before[0, 1:3].tolist() == after[0, 1:3].tolist()[::-1]
    assert len(list(tables.glob("*.tables"))) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # truncated
        lambda data: data[:-9] + bytes([data[-9] ^ 1]) + data[-8:],  # one bit of an id
        lambda data: b"",
        lambda data: data.replace(b"lbsearch-clip-tables 2 ", b"lbsearch-clip-tables 3 ", 1),
        lambda data: data.replace(b"\n", b"\r", 1),  # no header
    ],
)
def test_a_damaged_copy_is_ignored_and_made_again(
    files: Path, tmp_path: Path, damage: object
) -> None:
    tables = tmp_path / "tables"
    expected = ClipTokenizer(files, 77, tables).full_ids(TEXTS)
    (copy,) = tables.glob("*.tables")
    copy.write_bytes(damage(copy.read_bytes()))  # type: ignore[operator]
    key = copy.name.removesuffix(".tables")
    assert read_tables(tables, key) is None
    np.testing.assert_array_equal(ClipTokenizer(files, 77, tables).full_ids(TEXTS), expected)
    assert read_tables(tables, key) is not None


def test_damaged_files_are_reported_and_never_kept(files: Path, tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    vocab = json.loads((files / "vocab.json").read_text(encoding="utf-8"))
    del vocab["<|endoftext|>"]
    (files / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"has no '<\|endoftext\|>' token"):
        ClipTokenizer(files, 77, tables)
    assert not tables.exists() or not any(tables.iterdir())


def test_a_cache_that_cannot_be_written_changes_nothing(files: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be", encoding="utf-8")
    ids = ClipTokenizer(files, 77, blocked / "tokenizers").full_ids(TEXTS)
    np.testing.assert_array_equal(ids, ClipTokenizer(files, 77).full_ids(TEXTS))


def test_tokenizer_json_alone_is_kept_too(files: Path, tmp_path: Path) -> None:
    """A checkpoint with tokenizer.json: the copy is named after that file."""
    layout = tmp_path / "json-layout"
    shutil.copytree(files, layout)
    vocab = json.loads((layout / "vocab.json").read_text(encoding="utf-8"))
    merges = (layout / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    model = {"type": "BPE", "vocab": vocab, "merges": merges}
    (layout / "tokenizer.json").write_text(json.dumps({"model": model}), encoding="utf-8")
    tables = tmp_path / "tables"
    expected = ClipTokenizer(files, 77).full_ids(TEXTS)
    np.testing.assert_array_equal(ClipTokenizer(layout, 77, tables).full_ids(TEXTS), expected)
    assert sources_key([layout / "tokenizer.json"]) is not None
    (tables / f"{sources_key([layout / 'tokenizer.json'])}.tables").stat()
    os.utime(layout / "tokenizer.json", ns=(1, 1))  # a new identity: read and kept again
    np.testing.assert_array_equal(ClipTokenizer(layout, 77, tables).full_ids(TEXTS), expected)
    assert len(list(tables.glob("*.tables"))) == 2


def test_sorted_table_answers_like_a_dict() -> None:
    source = {"b": 4, "a": 0, "ab</w>": 9, "é": 2, "\uffff": 5, "𝄞": 6, "a b": 1}
    table = SortedTable.of(source)
    for key in [*source, "", "c", "aa", "ab", "zzz", "e", "\ud800", "a\nb", "\U0010ffff"]:
        assert table.get(key, -7) == source.get(key, -7), key
        assert (key in table) == (key in source), key
    assert len(table) == len(source) and 5 not in table


def test_old_copies_and_dead_writers_drafts_are_pruned(files: Path, tmp_path: Path) -> None:
    from lbsearch.models import compact_vocabulary

    tables = tmp_path / "tables"
    tables.mkdir()
    stale = [tables / f"{i:032x}.tables" for i in range(compact_vocabulary._KEEP + 3)]
    for i, path in enumerate(stale):
        path.write_bytes(b"an old copy")
        os.utime(path, (1000 + i, 1000 + i))
    dead, fresh = tables / ".abc.123.draft", tables / ".abd.456.draft"
    dead.write_bytes(b"half")
    os.utime(dead, (1000, 1000))
    fresh.write_bytes(b"being written")
    ClipTokenizer(files, 77, tables)
    left = sorted(tables.glob("*.tables"))
    assert len(left) == compact_vocabulary._KEEP
    assert stale[0] not in left and stale[-1] in left  # the oldest went
    assert not dead.exists() and fresh.exists()


def test_random_plain_texts_tokenize_alike_from_the_tables(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tables' look-ups (bisection on the keys' bytes, remembered) give the dictionaries'
    ids on texts of every printable ASCII character."""
    rng = np.random.default_rng(7)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz      ABCXYZ0123456789.,!?'-&()/:;@#"))
    texts = ["".join(rng.choice(alphabet, int(n))) for n in rng.integers(0, 120, 300)]
    expected = ClipTokenizer(files, 77).full_ids(texts)
    tables = tmp_path / "tables"
    ClipTokenizer(files, 77, tables)  # keeps the copy
    _reading_files_fails(monkeypatch)  # the next one reads the copy alone
    np.testing.assert_array_equal(ClipTokenizer(files, 77, tables).full_ids(texts), expected)
