"""`lbsearch cut`: a span of a video or audio file as a new file (any file, indexed or not)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def cut(
    file: Annotated[
        Path, typer.Argument(help="The video or audio file to cut.", show_default=False)
    ],
    start: Annotated[
        float, typer.Option("--start", help="Start of the span, in seconds.", show_default=False)
    ],
    end: Annotated[
        float, typer.Option("--end", help="End of the span, in seconds.", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The clip to write; its suffix picks the format (.mp4, .mkv, .webm, .m4a, .wav...).",
            show_default=False,
        ),
    ],
    pad: Annotated[
        float, typer.Option("--pad", help="Seconds to add before and after the span.")
    ] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Write [START, END] of FILE to OUTPUT, starting on the exact frame shown at START.

    The picture is copied when a key frame sits at the start, and re-encoded otherwise; the sound
    is re-encoded so it stays aligned. Prints the clip's path."""
    from lbsearch.media.clip import cut as cut_span

    result = cut_span(file, start, end, output, pad_s=pad, force=force)
    how = {None: "no picture", "copy": "picture copied"}.get(
        result.video, f"re-encoded ({result.video})"
    )
    sound = f"sound {result.audio}" if result.audio else "no sound"
    print(f"{result.start_s:.3f}-{result.end_s:.3f} s of {file}: {how}, {sound}", file=sys.stderr)
    print(result.path)
