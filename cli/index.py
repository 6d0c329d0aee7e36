"""`lbsearch index` and `lbsearch status`: building the library and looking at it."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .context import settings
from .progress import RichProgress, summary_table
from .runtime_options import BackendOption, DeviceOption, DtypeOption, LibraryOption

if TYPE_CHECKING:
    from lbsearch.config import Config
    from lbsearch.indexers.ray import RayOptions


def index(
    ctx: typer.Context,
    roots: Annotated[
        list[Path], typer.Argument(help="Folders (or files) to index.", show_default=False)
    ],
    library: LibraryOption = None,
    include_hidden: Annotated[
        bool, typer.Option(help="Also index hidden files and folders.")
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", help="Skip paths matching this gitignore-style glob (repeatable)."
        ),
    ] = None,
    as_modality: Annotated[
        str | None, typer.Option("--as", help="Index every file as this modality.")
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="Try files that failed before again.")] = False,
    reembed: Annotated[
        bool,
        typer.Option(
            "--reembed",
            help="Re-embed modalities whose model (or preprocessing) changed, beside the old "
            "vectors, which keep serving until every file has new ones. Without it a model "
            "change is refused.",
        ),
    ] = False,
    backend: BackendOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Decode and embed on Ray: local, auto (the cluster this machine is in, else "
            "local) or a cluster address. Needs lbsearch[ray]. Default: [index] ray.",
        ),
    ] = None,
    actors: Annotated[
        int | None, typer.Option(help="With --ray: encoder actors per modality (0: auto).")
    ] = None,
    gpus_per_actor: Annotated[
        float | None, typer.Option(help="With --ray: GPUs per encoder actor (0: CPUs).")
    ] = None,
    decode_cpus: Annotated[
        float | None, typer.Option(help="With --ray: CPUs per decode task.")
    ] = None,
) -> None:
    """Embed every media file under ROOTS into the library; re-runs only do what changed."""
    from lbsearch.embedder import open_embedder
    from lbsearch.indexers.pipeline import IndexOptions, run_index
    from lbsearch.indexers.plan import PlanOptions
    from lbsearch.indexers.walk import WalkOptions
    from lbsearch.library import Library
    from lbsearch.search.calibration import install_banks
    from lbsearch.types import Modality

    config = settings(ctx)
    run_below_searches(config.index.nice)
    forced = Modality.parse(as_modality) if as_modality else None
    _refuse_missing_roots_of_a_new_library(roots, library, config)
    options = IndexOptions(
        walk=WalkOptions(include_hidden=include_hidden, excludes=tuple(exclude or ())),
        plan=PlanOptions(forced=forced, retry_failed=retry_failed),
        ray=_ray_options(config, ray, actors, gpus_per_actor, decode_cpus, backend, device, dtype),
        reembed=reembed,
    )
    progress = RichProgress(enabled=sys.stderr.isatty())
    encoders = open_embedder(config, backend=backend, device=device, dtype=dtype)
    with Library.open(library, config=config, write=True) as lib, _FirstCtrlCStops(options.stop):
        progress.library = str(lib.root)
        install_banks(lib, encoders, config.relevance)  # new segments get their bias as added
        with progress:
            finished = run_index(roots, lib, encoders, config, options, progress)
        install_banks(lib, encoders, config.relevance)  # modalities new in this run
    summary_table(finished, str(lib.root))
    if finished.interrupted:
        raise typer.Exit(130)
    if finished.offline:
        folders = len(finished.offline)
        print(
            f"lbsearch: {folders} folder{'s' * (folders != 1)} could not be listed (offline); "
            f"{finished.counts.offline} indexed files under them were kept. Mount or fix them "
            "and index again, or `lbsearch forget PATH` to remove them from the library.",
            file=sys.stderr,
        )
    if finished.counts.failed or finished.offline:
        raise typer.Exit(1)


def run_below_searches(nice: int) -> None:
    """This process, and the decoders it starts (they inherit it), at Unix niceness `nice` at
    least ([index] nice): searches, the TUI and `serve` on the same cores come first. A warm
    query while an indexer held both cores (bench/query.py, 2 cores): 24.5 against 34.9 ms p50,
    1.07x against 1.52x the quiet figure. A process started nicer stays as nice; 0 leaves the
    priority as it was started."""
    from lbsearch.errors import ConfigError

    if not 0 <= nice <= 19:
        raise ConfigError(
            f"[index] nice must be 0 to 19, not {nice}",
            "set it in config.toml (10 by default; 0 indexes at the priority it was started with)",
        )
    if nice == 0 or not hasattr(os, "nice"):  # Windows has no niceness
        return
    current = os.nice(0)
    if current < nice:
        os.nice(nice - current)  # lowering one's own priority needs no privilege


def _refuse_missing_roots_of_a_new_library(
    roots: list[Path], library: Path | None, config: Config
) -> None:
    """A root that does not exist, for a library not made yet, is a typo: say so (exit 2) before
    a library folder is created. (For an existing library the indexer decides: a root it holds
    files from is offline, any other missing root is refused the same way.)"""
    from lbsearch.errors import UsageError
    from lbsearch.library import CATALOG_NAME, locate_library

    missing = [r for r in roots if not r.expanduser().exists()]
    where = locate_library(library, config.library)
    if missing and not (where.path / CATALOG_NAME).exists():
        raise UsageError(
            f"{missing[0]}: no such file or folder",
            "check the path (nothing was created)",
        )


def _ray_options(
    config: Config,
    address: str | None,
    actors: int | None,
    gpus_per_actor: float | None,
    decode_cpus: float | None,
    backend: str | None,
    device: str | None,
    dtype: str | None,
) -> RayOptions | None:
    """--ray and its sizes over the [index] settings; None for a local run. Ray is imported
    here, before the library is locked, so a missing install is told at once."""
    from lbsearch.indexers.ray import LanguageBindFactory, import_ray, ray_options_from

    factory = LanguageBindFactory(config, backend=backend, device=device, dtype=dtype)
    options = ray_options_from(config, factory, address, actors, gpus_per_actor, decode_cpus)
    if options is not None:
        import_ray()
    return options


class _FirstCtrlCStops:
    """First Ctrl-C: finish the current batch, keep everything, stop. Second: stop at once."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: object = None

    def __enter__(self) -> None:
        def handler(signum: int, frame: object) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            self.stop.set()
            print("\nstopping after the current batch (Ctrl-C again to stop now)", file=sys.stderr)

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, handler)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)  # type: ignore[arg-type]


def status(
    ctx: typer.Context,
    library: LibraryOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as one JSON object.")] = False,
    all_failed: Annotated[
        bool,
        typer.Option("--all-failed", help="List every failed file (by default the latest 100)."),
    ] = False,
) -> None:
    """Counts per modality, library size, models, last run, and failed files with reasons."""
    from lbsearch.library import Library

    from .status import ALL, FAILED_SHOWN, print_status, print_status_json

    config = settings(ctx)
    with Library.open(library, config=config) as lib:
        stats = lib.stats(ALL if all_failed else FAILED_SHOWN)
    if as_json:
        print_status_json(stats, config.relevance)
    else:
        print_status(stats)
