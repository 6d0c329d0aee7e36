"""`lbsearch browse`: the terminal UI (query box, results, preview). Textual loads in here only."""

from __future__ import annotations

from typing import Annotated

import typer

from .context import settings
from .index import LibraryOption
from .query import make_encoders, quiet_idle_threads
from .runtime_options import BackendOption, DeviceOption, DtypeOption


def browse(
    ctx: typer.Context,
    text: Annotated[
        str | None, typer.Argument(help="A first query to run (words, or a file path).")
    ] = None,
    library: LibraryOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Results per search.")] = 50,
    backend: BackendOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
) -> None:
    """Search interactively: Enter opens, s finds similar items, m cycles the modality, q quits."""
    quiet_idle_threads()
    from lbsearch.library import Library

    config = settings(ctx)
    with Library.open(library, config=config) as lib:
        # the app module imports textual_image, which must ask the terminal before Textual starts
        from lbsearch.search import SearchEngine

        from .tui.app import BrowseApp

        # towers load on the first search, then stay
        engine = SearchEngine(lib, config, make_encoders(lib, config, device, dtype, backend))
        BrowseApp(engine, query=text or "", limit=limit).run()
