"""The `lbsearch` command. Heavy libraries (torch, transformers, faiss) load inside commands only,
so `lbsearch --help` answers at once.

The entry point (`run`) imports only the module of the command it runs: `lbsearch query` does
not pay for the index progress display, the TUI or the web server (about 0.1 s of a cold
query). `app` (every command; what `--help` and the tests use) is built on first access."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lbsearch import __version__

from .errors import handles_errors

# name -> (module under lbsearch.cli, function), in the order `--help` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "index": ("index", "index"),
    "status": ("index", "status"),
    "forget": ("forget", "forget"),
    "query": ("query", "query"),
    "embed": ("embed", "embed"),
    "pull": ("models", "pull"),
    "models": ("models", "models_command"),
    "config": ("models", "config_command"),
    "browse": ("browse", "browse"),
    "serve": ("serve", "serve"),
    "cut": ("cut", "cut"),
    "eval": ("eval", "eval_command"),
}
_GLOBAL_VALUES = ("--config",)  # global options that take a value
# commands that answer and exit, read-only: their processes skip Python's teardown (one_shot.py)
ONE_SHOT = frozenset({"query"})


def _version(value: bool) -> None:
    if value:
        print(f"lbsearch {__version__}")
        raise typer.Exit()


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


def build_app(only: str | None = None) -> typer.Typer:
    """The command-line app with every command, or with `only` that one."""
    built = typer.Typer(
        name="lbsearch",
        help="Local cross-modal search over images, videos, audio, depth and thermal images "
        "with the LanguageBind encoders.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    built.callback()(main)
    for name, (module, function) in COMMANDS.items():
        if only is None or name == only:
            command = getattr(importlib.import_module(f"{__package__}.{module}"), function)
            built.command(name)(handles_errors(command))
    return built


def command_named(argv: list[str]) -> str | None:
    """The command `argv` runs (None: none, or not a known one: then every command loads, for
    the help or the error that lists them)."""
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_VALUES:
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def __getattr__(name: str) -> Any:
    if name == "app":  # `from lbsearch.cli.main import app`: every command
        built = build_app()
        globals()["app"] = built
        return built
    raise AttributeError(name)


def run() -> None:
    command = command_named(sys.argv[1:])
    if command in ONE_SHOT:
        from .one_shot import one_shot_process

        with one_shot_process():  # before the command's imports: the collector is off for them
            build_app(command)()
    else:
        build_app(command)()
