"""The options that choose where towers run, shared by index, embed, query, browse and serve,
and the library option (here, not in index.py, so that `query` does not import the progress
display)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LibraryOption = Annotated[
    Path | None,
    typer.Option(
        "--library",
        help="Library folder (default: $LBSEARCH_HOME, [library] path, or the user data dir).",
    ),
]

BackendOption = Annotated[
    str | None,
    typer.Option(
        help="auto, torch or onnxruntime (default: [runtime] backend). ONNX Runtime exports each "
        "tower once into the user cache.",
        show_default=False,
    ),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        help="auto, cpu, cuda, cuda:N or mps (default: [runtime] device).", show_default=False
    ),
]
DtypeOption = Annotated[
    str | None,
    typer.Option(
        help="auto, float32, bfloat16, float16, or int8 (ONNX Runtime; media towers only).",
        show_default=False,
    ),
]
