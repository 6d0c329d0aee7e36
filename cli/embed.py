"""`lbsearch embed`: vectors for files or texts, as JSON Lines (or a summary on a terminal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lbsearch.errors import UsageError

from .context import settings
from .runtime_options import BackendOption, DeviceOption, DtypeOption

if TYPE_CHECKING:
    from lbsearch.embedding import EmbedResult


def embed(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None, typer.Argument(help="Media files to embed.", show_default=False)
    ] = None,
    as_modality: Annotated[
        str | None,
        typer.Option(
            "--as", help="Treat every FILE as this modality (image, video, audio, depth, thermal)."
        ),
    ] = None,
    text: Annotated[
        list[str] | None, typer.Option("--text", help="Embed this text (repeatable).")
    ] = None,
    modality: Annotated[
        str, typer.Option("--modality", help="With --text: whose checkpoint's text tower to use.")
    ] = "image",
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Checkpoint (repo id or directory) instead of the configured one."
        ),
    ] = None,
    backend: BackendOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="JSON Lines output (implied when stdout is not a terminal)."),
    ] = False,
) -> None:
    """Print one JSON object per file (or text): {"path", "modality", "model", "segments": [{"start_s", "end_s", "embedding"}]}.

    Files that cannot be embedded appear with "error" and "reason"; the exit status is then 1.
    """
    from lbsearch.embedder import open_embedder, override_for
    from lbsearch.embedding import embed_files, embed_texts
    from lbsearch.types import Modality

    config = settings(ctx)
    if not files and not text:
        raise UsageError("nothing to embed", "give FILE arguments or --text")
    embedder = open_embedder(
        config,
        models=override_for(model),
        backend=backend,
        device=device,
        dtype=dtype,
        notify=_notify,
    )
    json_mode = as_json or not sys.stdout.isatty()
    printer = _JsonPrinter() if json_mode else _SummaryPrinter()
    if text:
        for result in embed_texts(text, Modality.parse(modality), embedder):
            printer.show(result)
    if files:
        forced = Modality.parse(as_modality) if as_modality else None
        for result in embed_files(files, forced, embedder, config):
            printer.show(result)
    if printer.failures:
        raise typer.Exit(1)


def _notify(message: str) -> None:
    """Long one-off steps of the embedder (a first ONNX export) are told on stderr."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


class _JsonPrinter:
    def __init__(self) -> None:
        self.failures = 0

    def show(self, result: EmbedResult) -> None:
        self.failures += result.error is not None
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()


class _SummaryPrinter:
    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)
        self.failures = 0

    def show(self, result: EmbedResult) -> None:
        name = result.path if result.path is not None else repr(result.text)
        if result.error is not None:
            self.failures += 1
            self.console.print(f"[red]✗[/] {name}: {result.error} [dim]({result.reason})[/]")
            return
        spans = len(result.segments)
        dim = len(result.segments[0].vector) if spans else 0
        what = "1 vector" if spans == 1 else f"{spans} segments"
        self.console.print(
            f"[green]✓[/] {name}  [cyan]{result.modality}[/]  {what} x {dim}-d  [dim]{result.model}[/]"
        )
