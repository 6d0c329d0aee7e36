"""The options that choose where towers run, shared by index, embed, query, browse and serve."""

from __future__ import annotations

from typing import Annotated

import typer

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
