"""`lbsearch eval`: R@k, mAP, nDCG@10 and the cut-off's precision/recall on labelled media."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lbsearch.errors import UsageError

from .context import settings
from .index import LibraryOption
from .query import make_encoders, quiet_idle_threads
from .runtime_options import BackendOption, DeviceOption, DtypeOption

_COLUMNS = ("R@1", "R@5", "R@10", "mAP", "nDCG@10", "precision_at_cutoff", "recall_at_cutoff")


def eval_command(
    ctx: typer.Context,
    dataset: Annotated[
        Path,
        typer.Argument(
            help="A folder of labelled sub-folders (the label is the query), or a JSON Lines "
            'file of {"query": TEXT or "like": PATH, "relevant": [PATH, ...]}.',
            show_default=False,
        ),
    ],
    compare: Annotated[
        str,
        typer.Option(
            metavar="ITEMS",
            help="Comma-separated: scorings, raw (cosine) and calibrated (relevance), and to "
            "compare encodings two or more BACKEND/DTYPE (torch/float32,onnxruntime/int8), each "
            "run with every scoring named (calibrated when none is). Only the query side is "
            "encoded each way (the text tower; int8 runs texts in float32, so it differs from "
            "float32 only for examples the library does not hold): the library's vectors stay "
            "as indexed, no re-indexing needed.",
        ),
    ] = "raw,calibrated",
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per (scoring, modality) line.")
    ] = False,
    library: LibraryOption = None,
    backend: BackendOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
) -> None:
    """Measure retrieval quality on your own labelled media, already indexed in the library.

    Every query ranks every file exactly as `lbsearch query TEXT --all --limit <files> --json`
    would; rows per scoring for the merged list ("all") and each modality (`-m`). R@k: share of
    queries with a relevant file in the top k; mAP over the whole ranking; nDCG@10 with binary
    gains; precision/recall of what the default cut-off keeps (calibrated only). To compare
    encodings of the query side, name them in --compare (BACKEND/DTYPE): rows of each side by
    side, with an "encoding" key in --json.

    Exit status: 0 measured; 2 a dataset that cannot be read or names a file the library does
    not hold (indexed it first).
    """
    quiet_idle_threads()
    from lbsearch.library import Library
    from lbsearch.search import SearchEngine
    from lbsearch.search.evaluate import evaluate, load_dataset, parse_compare, side_by_side

    asked = parse_compare(compare)
    if asked.encodings and (backend or dtype):
        raise UsageError(
            "--backend/--dtype and encodings in --compare name the encoding twice",
            "give the encodings in --compare only",
        )
    config = settings(ctx)
    queries = load_dataset(dataset)
    with Library.open(library, config=config) as lib:
        if not asked.encodings:
            engine = SearchEngine(lib, config, make_encoders(lib, config, device, dtype, backend))
            rows = evaluate(engine, queries, asked.scorings)
        else:
            per_encoding = {}
            for way, kind in asked.encodings:
                encoders = make_encoders(lib, config, device, kind, way)
                engine = SearchEngine(lib, config, encoders)
                per_encoding[f"{way}/{kind}"] = evaluate(engine, queries, asked.scorings)
            rows = side_by_side(per_encoding)
    if as_json:
        sys.stdout.write("".join(json.dumps(row) + "\n" for row in rows))
    else:
        _print_table(rows)


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    labels = ("encoding",) * ("encoding" in rows[0]) if rows else ()
    for name in (*labels, "scoring", "modality", "queries", *_COLUMNS):
        right = name not in ("encoding", "scoring", "modality")
        table.add_column(name, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        table.add_row(
            *(row[name] for name in labels),
            row["scoring"],
            row["modality"],
            str(row["queries"]),
            *(_cell(row[c]) for c in _COLUMNS),
        )
    Console(highlight=False).print(table)
