"""`lbsearch eval`: its metrics equal those computed by hand from `lbsearch query --json`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsearch.cli import eval as eval_module
from lbsearch.cli import query as query_module
from lbsearch.cli.main import app
from lbsearch.config import load_config
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.library import Library
from lbsearch.search.calibration import install_banks
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media

runner = CliRunner()
KEYS = {
    "scoring",
    "modality",
    "queries",
    "R@1",
    "R@5",
    "R@10",
    "mAP",
    "nDCG@10",
    "precision_at_cutoff",
    "recall_at_cutoff",
}
LABELS = {
    "sunny_beach": ["sunset_beach.jpg", "green_field.png"],
    "a-bouncing-ball": ["bouncing_ball.mp4"],
    "noise": ["whistle.wav", "hum.flac", "thermal/person_ir.jpg"],
    "corridor": ["depth/corridor_depth.png"],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("eval")
    write_sample_media(base / "media")
    for label, names in LABELS.items():
        for name in names:
            target = base / "dataset" / label / "sub" / name  # counted recursively
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(base / "media" / name, target)
    config = load_config()
    with Library.open(base / "library", config=config, write=True) as lib:
        run_index([base / "dataset"], lib, FakeEncoders(), config, IndexOptions(), lambda e: None)  # type: ignore[arg-type]
        install_banks(lib, FakeEncoders(), config.relevance)  # type: ignore[arg-type]
    return base / "dataset", base / "library"


@pytest.fixture
def fake_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query_module, "make_encoders", lambda *a, **k: FakeEncoders())
    monkeypatch.setattr(eval_module, "make_encoders", lambda *a, **k: FakeEncoders())


def _query(library: Path, *args: str) -> list[str]:
    result = runner.invoke(app, ["query", *args, "--json", "--library", str(library)])
    assert result.exit_code == 0, result.output
    return [json.loads(line)["path"] for line in result.stdout.splitlines()]


def _by_hand(rankings: list[tuple[list[str], set[str], set[str] | None]]) -> dict[str, float]:
    """The metrics as the issue defines them, written out plainly."""
    rows = [r for r in rankings if r[1]]
    out: dict[str, float] = {}
    for k in (1, 5, 10):
        out[f"R@{k}"] = sum(any(p in rel for p in rank[:k]) for rank, rel, _ in rows) / len(rows)
    aps, ndcgs, precisions, recalls = [], [], [], []
    for rank, rel, kept in rows:
        hits = [i for i, p in enumerate(rank) if p in rel]
        aps.append(sum((n + 1) / (i + 1) for n, i in enumerate(hits)) / len(rel))
        dcg = sum(1 / math.log2(i + 2) for i in hits if i < 10)
        ndcgs.append(dcg / sum(1 / math.log2(i + 2) for i in range(min(10, len(rel)))))
        if kept is not None:
            precisions.append(len(kept & rel) / len(kept) if kept else 0.0)
            recalls.append(len(kept & rel) / len(rel))
    out["mAP"] = sum(aps) / len(rows)
    out["nDCG@10"] = sum(ndcgs) / len(rows)
    if precisions:
        out["precision_at_cutoff"] = sum(precisions) / len(rows)
        out["recall_at_cutoff"] = sum(recalls) / len(rows)
    return out


def test_eval_equals_the_metrics_computed_from_query_json(
    dataset: tuple[Path, Path], fake_cli: None
) -> None:
    folder, library = dataset
    result = runner.invoke(app, ["eval", str(folder), "--json", "--library", str(library)])
    assert result.exit_code == 0, result.output
    rows = {(r["scoring"], r["modality"]): r for r in map(json.loads, result.stdout.splitlines())}
    assert all(set(row) == KEYS for row in rows.values())
    size = str(sum(len(names) for names in LABELS.values()))
    for scoring, order in (("raw", "score"), ("calibrated", "relevance")):
        for modality in ("all", "image", "audio"):
            only = [] if modality == "all" else ["-m", modality]
            rankings = []
            for label, names in LABELS.items():
                text = label.replace("_", " ").replace("-", " ")
                ranking = _query(library, text, "--all", "--limit", size, "--order", order, *only)
                relevant = {str((folder / label / "sub" / n).resolve()) for n in names}
                relevant &= set(ranking)  # per modality: the files its ranking can return
                kept = None
                if scoring == "calibrated":  # the default cut-off, no count limit
                    shown = runner.invoke(
                        app, ["query", text, "--limit", size, "--json", *only, "--library",
                              str(library)],
                    )  # fmt: skip
                    lines = [json.loads(line) for line in shown.stdout.splitlines()]
                    kept = {r["path"] for r in lines if not r["weak"]}
                rankings.append((ranking, relevant, kept))
            expected = _by_hand(rankings)
            row = rows[(scoring, modality)]
            assert row["queries"] == sum(1 for r in rankings if r[1])
            for key, value in expected.items():
                assert row[key] == pytest.approx(value, abs=1e-6), (scoring, modality, key)
            if scoring == "raw":
                assert row["precision_at_cutoff"] is None and row["recall_at_cutoff"] is None


def test_a_file_the_library_does_not_hold_is_named_with_exit_2(
    dataset: tuple[Path, Path], fake_cli: None, tmp_path: Path
) -> None:
    folder, library = dataset
    lines = tmp_path / "set.jsonl"
    held = folder / "noise" / "sub" / "whistle.wav"
    lines.write_text(
        json.dumps({"query": "noise", "relevant": [str(held)]})
        + "\n"
        + json.dumps({"like": str(held), "relevant": ["elsewhere.jpg"]})
        + "\n"
    )
    result = runner.invoke(app, ["eval", str(lines), "--library", str(library)])
    assert result.exit_code == 2
    assert str(tmp_path / "elsewhere.jpg") in result.output, "relative to the JSON Lines file"


def test_json_lines_queries_by_text_and_by_example(
    dataset: tuple[Path, Path], fake_cli: None, tmp_path: Path
) -> None:
    folder, library = dataset
    lines = tmp_path / "set.jsonl"
    beach = folder / "sunny_beach" / "sub"
    lines.write_text(
        json.dumps({"query": "sunny beach", "relevant": [str(beach / "sunset_beach.jpg")]})
        + "\n"
        + json.dumps({"like": str(beach / "sunset_beach.jpg"), "relevant": [str(beach / "green_field.png")]})
        + "\n"
    )  # fmt: skip
    result = runner.invoke(app, ["eval", str(lines), "--json", "--library", str(library)])
    assert result.exit_code == 0, result.output
    merged = [json.loads(x) for x in result.stdout.splitlines() if '"all"' in x]
    assert [r["queries"] for r in merged] == [2, 2]
    table = runner.invoke(
        app, ["eval", str(lines), "--library", str(library)], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0 and "nDCG@10" in table.stdout


# ------------------------------------------------------------------- --compare encodings


def test_compare_parses_scorings_and_encodings() -> None:
    from lbsearch.errors import UsageError
    from lbsearch.search.evaluate import parse_compare

    asked = parse_compare("raw,calibrated")
    assert asked.scorings == ("raw", "calibrated") and asked.encodings == ()
    asked = parse_compare("torch/float32, onnxruntime/int8")
    assert asked.scorings == ("calibrated",), "calibrated when no scoring is named"
    assert asked.encodings == (("torch", "float32"), ("onnxruntime", "int8"))
    asked = parse_compare("raw,torch/float32,onnxruntime/float32")
    assert asked.scorings == ("raw",) and len(asked.encodings) == 2
    for bad in ("cosine", "torch/float33", "tensorflow/float32", "torch/float32", ""):
        with pytest.raises(UsageError):
            parse_compare(bad)


@pytest.fixture(scope="module")
def tiny_dataset(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from lbsearch.embedder import open_embedder

    base = tmp_path_factory.mktemp("eval-tiny")
    write_sample_media(base / "media")
    for label, names in LABELS.items():
        for name in names:
            target = base / "dataset" / label / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(base / "media" / name, target)
    config = load_config(tiny_config)
    encoders = open_embedder(config, backend="torch", dtype="float32")
    with Library.open(base / "library", config=config, write=True) as lib:
        run_index([base / "dataset"], lib, encoders, config, IndexOptions(), lambda e: None)
        install_banks(lib, encoders, config.relevance)
    return base / "dataset", base / "library"


def _eval(config: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    result = runner.invoke(app, ["--config", str(config), "eval", *args, "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_compare_encodings_side_by_side_equal_one_run_each(
    tiny_config: Path, tiny_dataset: tuple[Path, Path]
) -> None:
    folder, library = tiny_dataset
    where = ["--library", str(library)]
    both = _eval(
        tiny_config, str(folder), "--compare", "raw,torch/float32,onnxruntime/int8", *where
    )
    assert all(set(row) == KEYS | {"encoding"} for row in both)
    assert next(iter(both[0])) == "encoding", "the encoding comes first"
    assert [r["encoding"] for r in both[:2]] == ["torch/float32", "onnxruntime/int8"]
    assert (both[0]["scoring"], both[0]["modality"]) == (both[1]["scoring"], both[1]["modality"])
    for encoding in ("torch/float32", "onnxruntime/int8"):
        backend, dtype = encoding.split("/")
        alone = _eval(
            tiny_config, str(folder), "--compare", "raw", "--backend", backend, "--dtype", dtype,
            *where,
        )  # fmt: skip
        assert all(set(row) == KEYS for row in alone), "no encoding key without encodings"
        mine = [{k: v for k, v in r.items() if k != "encoding"} for r in both]
        assert [r for r, e in zip(mine, both, strict=True) if e["encoding"] == encoding] == alone
    table = runner.invoke(
        app,
        ["--config", str(tiny_config), "eval", str(folder), "--compare",
         "torch/float32,onnxruntime/float32", *where],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "encoding" in table.stdout and "onnxruntime/float32" in table.stdout


def test_compare_refuses_what_it_cannot_run(dataset: tuple[Path, Path], fake_cli: None) -> None:
    folder, library = dataset
    for args, said in (
        (["--compare", "raw,fast"], "'fast' is neither a scoring nor BACKEND/DTYPE"),
        (["--compare", "torch/float32"], "one encoding is nothing to compare"),
        (["--compare", "torch/float32,onnxruntime/int8", "--dtype", "int8"], "twice"),
    ):
        result = runner.invoke(app, ["eval", str(folder), *args, "--library", str(library)])
        assert result.exit_code == 2 and said in result.output, result.output
