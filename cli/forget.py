"""`lbsearch forget`: the one way, besides a folder listed without them, that files leave."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .context import settings
from .index import LibraryOption


def forget(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files, folders or roots to remove from the library.", show_default=False
        ),
    ],
    library: LibraryOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove the files under PATHS from the library, with their vectors (the files on disk are
    not touched). Offline folders stay in the library until you forget them."""
    from lbsearch.errors import UsageError
    from lbsearch.library import Library

    config = settings(ctx)
    targets = [str(Path(p).expanduser().absolute()) for p in paths]
    with Library.open(library, config=config, write=True, purpose="lbsearch forget") as lib:
        counts = {target: lib.count_files(target) for target in targets}
        total = sum(counts.values())
        if not total:
            raise UsageError(
                f"the library {lib.root} holds no file at or under {', '.join(targets)}",
                "`lbsearch status` lists the library's roots and offline folders",
            )
        for target, count in counts.items():
            print(f"{target}: {count} file{'s' * (count != 1)}", file=sys.stderr)
        if not yes:
            _confirm(total)
        removed = lib.forget(targets)
    print(f"forgot {removed} file{'s' * (removed != 1)} and their vectors", file=sys.stderr)


def _confirm(total: int) -> None:
    from lbsearch.errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError(
            f"forgetting {total} files needs a confirmation, and there is no terminal to ask",
            "pass --yes to confirm",
        )
    if not typer.confirm(f"Remove {total} files and their vectors from the library?"):
        raise typer.Exit(1)
