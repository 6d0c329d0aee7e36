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
        str | None,
        typer.Argument(help="A first query, in the query box's syntax (see the README)."),
    ] = None,
    library: LibraryOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Results per search.")] = 50,
    backend: BackendOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
) -> None:
    """Search interactively: Enter opens, s finds similar items, m cycles the modality, q quits.

    The query box reads what `lbsearch query` reads, in one line: words (one text), dog:2
    (a weight), "a phrase", -cat or not:cat, a file path or like:PATH (search by example),
    -like:PATH, m:video, path:GLOB, after:DATE, before:DATE (a date is the whole day),
    min-duration:S, max-duration:S, min-score:X. A path that does not exist is an error, not a
    text: quote it to search for the words.
    """
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
