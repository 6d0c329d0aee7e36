"""The `lbsearch` command. Heavy libraries (torch, transformers, faiss) load inside commands only,
so `lbsearch --help` answers at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lbsearch import __version__

from .browse import browse
from .cut import cut
from .embed import embed
from .errors import handles_errors
from .eval import eval_command
from .forget import forget
from .index import index, status
from .models import config_command, models_command, pull
from .query import query
from .serve import serve

app = typer.Typer(
    name="lbsearch",
    help="Local cross-modal search over images, videos, audio, depth and thermal images "
    "with the LanguageBind encoders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"lbsearch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Settings file to use instead of the user's config.toml."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx.obj = {"config": config}


app.command("index")(handles_errors(index))
app.command("status")(handles_errors(status))
app.command("forget")(handles_errors(forget))
app.command("query")(handles_errors(query))
app.command("embed")(handles_errors(embed))
app.command("pull")(handles_errors(pull))
app.command("models")(handles_errors(models_command))
app.command("config")(handles_errors(config_command))
app.command("browse")(handles_errors(browse))
app.command("serve")(handles_errors(serve))
app.command("cut")(handles_errors(cut))
app.command("eval")(handles_errors(eval_command))


def run() -> None:
    app()
