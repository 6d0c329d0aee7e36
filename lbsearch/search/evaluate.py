"""`lbsearch eval`: retrieval quality on a user's own labelled media.

A dataset is a folder whose top-level sub-folders are labels (the label, `_` and `-` read as
spaces, is the text query; every file under it, recursively, is relevant), or a JSON Lines file
of {"query": TEXT or "like": PATH, "relevant": [PATH, ...]} (paths absolute or relative to the
file). A query's ranking is exactly what `lbsearch query TEXT --all --limit <files in the
library> --json` returns; per-modality rows rank with `-m MODALITY` and count the queries with a
relevant file in that ranking's modality.

`--compare` names scorings (raw, calibrated) and, to compare encodings, BACKEND/DTYPE pairs
(`torch/float32,onnxruntime/int8`): each encoding runs every scoring asked (calibrated when none
is), on the same library. The library's vectors were embedded once, with one encoding, so what
changes is the query side: the text tower, and example files the library does not hold
unchanged (those it holds give their stored vectors).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..types import Modality
from .query import Query, Term

if TYPE_CHECKING:
    from .engine import SearchEngine

SCORINGS = ("raw", "calibrated")
_BACKENDS = ("auto", "torch", "onnxruntime")
_DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "int8", "qint8")


@dataclass(frozen=True)
class Comparison:
    """What `--compare` asks: scorings, and encodings ((backend, dtype) pairs; none: the one
    the flags and settings give, and rows without an `encoding` key)."""

    scorings: tuple[str, ...]
    encodings: tuple[tuple[str, str], ...]


def parse_compare(spec: str) -> Comparison:
    """`raw,calibrated`, `torch/float32,onnxruntime/int8`, or both kinds mixed (UsageError if
    an item is neither a scoring nor BACKEND/DTYPE, or fewer than two encodings are named)."""
    scorings: list[str] = []
    encodings: list[tuple[str, str]] = []
    for item in (part.strip() for part in spec.split(",")):
        backend, slash, dtype = item.partition("/")
        if item in SCORINGS and item not in scorings:
            scorings.append(item)
        elif slash and backend in _BACKENDS and dtype in _DTYPES:
            if (backend, dtype) not in encodings:
                encodings.append((backend, dtype))
        elif item:
            raise UsageError(
                f"--compare {spec!r}: {item!r} is neither a scoring nor BACKEND/DTYPE",
                "scorings: raw, calibrated; encodings: BACKEND/DTYPE with BACKEND one of "
                f"{', '.join(_BACKENDS)} and DTYPE one of float32, bfloat16, float16, int8, "
                "auto (e.g. --compare torch/float32,onnxruntime/int8)",
            )
    if len(encodings) == 1:
        raise UsageError(
            f"--compare {spec!r}: one encoding is nothing to compare",
            "name two or more (torch/float32,onnxruntime/int8), or use --backend/--dtype",
        )
    if not scorings:
        if not encodings:
            raise UsageError(f"--compare {spec!r}: nothing to run", "use raw, calibrated or both")
        scorings.append("calibrated")
    return Comparison(tuple(scorings), tuple(encodings))


def side_by_side(per_encoding: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of every encoding, each with its `encoding` key first, the encodings' rows of one
    (scoring, modality) next to each other."""
    out: list[dict[str, Any]] = []
    keys: list[tuple[str, str]] = []
    for rows in per_encoding.values():
        keys += [k for k in ((r["scoring"], r["modality"]) for r in rows) if k not in keys]
    for key in keys:
        for encoding, rows in per_encoding.items():
            out += [
                {"encoding": encoding, **row}
                for row in rows
                if (row["scoring"], row["modality"]) == key
            ]
    return out


@dataclass(frozen=True)
class EvalQuery:
    """One labelled query: a text or an example file, and the files relevant to it."""

    text: str | None
    like: Path | None
    relevant: frozenset[str]


@dataclass(frozen=True)
class Ranked:
    """A query's ranking (file paths, best first), its relevant files and what the default
    cut-off keeps (None where it does not apply: raw cosine)."""

    ranking: tuple[str, ...]
    relevant: frozenset[str]
    kept: frozenset[str] | None


def load_dataset(path: Path) -> list[EvalQuery]:
    """The queries of a labelled folder or a JSON Lines file (UsageError if unusable)."""
    path = path.expanduser()
    if path.is_dir():
        return _labelled_folder(path)
    if path.is_file():
        return _json_lines(path)
    raise UsageError(f"{path}: no such folder or file", "give a labelled folder or a .jsonl file")


def _labelled_folder(root: Path) -> list[EvalQuery]:
    queries = []
    for label in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = frozenset(str(f.resolve()) for f in label.rglob("*") if f.is_file())
        text = " ".join(label.name.replace("_", " ").replace("-", " ").split())
        if files and text:
            queries.append(EvalQuery(text, None, files))
    if not queries:
        raise UsageError(f"{root}: no labelled sub-folder with files", "one sub-folder per label")
    return queries


def _json_lines(path: Path) -> list[EvalQuery]:
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, like, relevant = row.get("query"), row.get("like"), row["relevant"]
            if (text is None) == (like is None) or not isinstance(relevant, list):
                raise ValueError
        except (ValueError, KeyError, AttributeError):
            raise UsageError(
                f"{path}:{number}: not a query line",
                'write {"query": TEXT or "like": PATH, "relevant": [PATH, ...]}',
            ) from None
        resolve = path.parent.joinpath
        files = frozenset(str(resolve(str(p)).expanduser().resolve()) for p in relevant)
        example = resolve(str(like)).expanduser().resolve() if like is not None else None
        queries.append(EvalQuery(text, example, files))
    if not queries:
        raise UsageError(f"{path}: no queries", "one JSON object per line")
    return queries


def check_held(engine: SearchEngine, queries: Sequence[EvalQuery]) -> None:
    """UsageError naming the first relevant file the library does not hold."""
    paths = sorted({p for q in queries for p in q.relevant})
    held = engine.library.files_by_paths(paths)
    for path in paths:
        if path not in held:
            raise UsageError(
                f"{path}: not in the library {engine.library.root}",
                "index the dataset's files first (`lbsearch index FOLDER`), or fix the dataset",
            )


def rank(
    engine: SearchEngine, query: EvalQuery, scoring: str, modality: Modality | None, size: int
) -> Ranked:
    """The query's full ranking as `lbsearch query ... --all --limit size` gives it."""
    term = Term(text=query.text) if query.text is not None else Term(file=query.like)
    order = "score" if scoring == "raw" else "relevance"
    asked = Query((term,), modalities=(modality,) if modality else (), limit=size, order=order)
    ranking = tuple(h.path for h in engine.search(asked))
    kept = None
    if scoring == "calibrated":
        shown = engine.search(replace(asked, cut=True))
        kept = frozenset(h.path for h in shown if not h.weak)
    return Ranked(ranking, query.relevant, kept)


# ------------------------------------------------------------------------------ metrics


def average_precision(ranking: Sequence[str], relevant: frozenset[str]) -> float:
    found, total = 0, 0.0
    for position, path in enumerate(ranking, 1):
        if path in relevant:
            found += 1
            total += found / position
    return total / len(relevant) if relevant else 0.0


def ndcg_at_10(ranking: Sequence[str], relevant: frozenset[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(ranking[:10]) if p in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def metrics(scoring: str, modality: str, ranked: Iterable[Ranked]) -> dict[str, Any]:
    """One output row: the metrics averaged over the queries with a relevant file."""
    rows = [r for r in ranked if r.relevant]
    n = len(rows)

    def mean(values: Iterable[float]) -> float:
        return round(sum(values) / n, 6) if n else 0.0

    out: dict[str, Any] = {"scoring": scoring, "modality": modality, "queries": n}
    for k in (1, 5, 10):
        out[f"R@{k}"] = mean(float(bool(r.relevant & set(r.ranking[:k]))) for r in rows)
    out["mAP"] = mean(average_precision(r.ranking, r.relevant) for r in rows)
    out["nDCG@10"] = mean(ndcg_at_10(r.ranking, r.relevant) for r in rows)
    precision = recall = None
    if scoring == "calibrated":
        kept = [(r.kept or frozenset(), r.relevant) for r in rows]
        precision = mean(len(k & rel) / len(k) if k else 0.0 for k, rel in kept)
        recall = mean(len(k & rel) / len(rel) for k, rel in kept)
    out["precision_at_cutoff"] = precision
    out["recall_at_cutoff"] = recall
    return out


def evaluate(
    engine: SearchEngine, queries: Sequence[EvalQuery], scorings: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows per (scoring, modality): "all" (the merged list) first, then each modality."""
    check_held(engine, queries)
    size = max(1, sum(1 for _ in engine.library.iter_files()))
    rows = []
    for scoring in scorings:
        merged = [rank(engine, q, scoring, None, size) for q in queries]
        rows.append(metrics(scoring, "all", merged))
        for modality in engine.indexed_modalities():
            ranked = [rank(engine, q, scoring, modality, size) for q in queries]
            # relevant here: the relevant files this modality's ranking can return
            held = [replace(r, relevant=r.relevant & frozenset(r.ranking)) for r in ranked]
            rows.append(metrics(scoring, modality.value, held))
    return rows
