"""`lbsearch query`: text -> any and file -> any search, as a table, JSON Lines or bare paths."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lbsearch.errors import UsageError

from .context import settings
from .runtime_options import BackendOption, DeviceOption, DtypeOption, LibraryOption

if TYPE_CHECKING:
    from lbsearch.config import Config
    from lbsearch.embedder import Embedder, LanguageBindEmbedder
    from lbsearch.library import Library
    from lbsearch.search import Hit, Query

    from .query_server import Answer, Runtime


def query(
    ctx: typer.Context,
    text: Annotated[
        list[str] | None,
        typer.Argument(
            help="What to look for (several texts add up); TEXT:WEIGHT weighs one, e.g. dog:2.",
            show_default=False,
            metavar="TEXT",
        ),
    ] = None,
    like: Annotated[
        list[str] | None,
        typer.Option(
            "--like",
            metavar="FILE",
            help="Find files like this one (any modality, indexed or not; repeatable).",
        ),
    ] = None,
    not_text: Annotated[
        list[str] | None,
        typer.Option(
            "--not",
            metavar="TEXT",
            help="Push results away from this text (repeatable; TEXT:WEIGHT).",
        ),
    ] = None,
    not_like: Annotated[
        list[str] | None,
        typer.Option(
            "--not-like",
            metavar="FILE",
            help="Push results away from this example file (repeatable).",
        ),
    ] = None,
    modality: Annotated[
        list[str] | None,
        typer.Option(
            "--modality", "-m", metavar="MODALITY", help="Search only this modality (repeatable)."
        ),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option(
            "--path", metavar="GLOB", help="Only files whose path matches this glob (repeatable)."
        ),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Only files modified on or after DATE: a date counts from its start "
            "(2024-05-01), a date-time is exact (2024-05-01T14:30).",
        ),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Only files modified on or before DATE: a date includes the whole day, "
            "a date-time is exact.",
        ),
    ] = None,
    min_duration: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Only media at least this many seconds long."),
    ] = None,
    max_duration: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Only media at most this many seconds long."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Number of files to show.")] = 20,
    min_score: Annotated[
        float | None, typer.Option(help="Hide results below this cosine similarity.")
    ] = None,
    min_relevance: Annotated[
        float | None,
        typer.Option(
            metavar="X",
            help="Show the results of relevance X or more (replaces the default cut-off).",
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="No cut-off: every result, up to --limit.")
    ] = False,
    order: Annotated[
        str,
        typer.Option(metavar="ORDER", help="Rank by relevance (calibrated) or score (raw cosine)."),
    ] = "relevance",
    match: Annotated[
        str,
        typer.Option(
            metavar="MODE",
            help="Which stream of a video window must match: any, both (picture and sound), "
            "picture or sound.",
        ),
    ] = "any",
    moments: Annotated[
        int,
        typer.Option(metavar="N", help="Moments (merged time spans) per video or audio file."),
    ] = 1,
    cut_dir: Annotated[
        Path | None,
        typer.Option(
            "--cut",
            metavar="DIR",
            help="Also write each result's moments as clips into DIR (created; stdout unchanged).",
        ),
    ] = None,
    show_scores: Annotated[
        bool, typer.Option("--scores", help="Add a column of raw cosine scores to the table.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines (implied when stdout is not a terminal).")
    ] = False,
    paths_only: Annotated[
        bool, typer.Option("--paths", help="Print only the paths, one a line (for xargs).")
    ] = False,
    library: LibraryOption = None,
    backend: BackendOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    no_server: Annotated[
        bool,
        typer.Option(
            "--no-server",
            help="Search in this process even when `lbsearch serve` runs on the library "
            "(also $LBSEARCH_NO_SERVER=1).",
        ),
    ] = False,
) -> None:
    """Find the files that best match TEXT and/or --like examples, in every indexed modality.

    Terms add up: `lbsearch query "dog" --like bark.wav --not "cat"`. A term's weight follows a
    colon ("dog:2", --not "cat:0.5"); --not and --not-like terms count negatively.

    Results are ranked by relevance: the hubness-corrected similarity on one scale for every
    modality (standard deviations above what an unrelated query scores; README, "Relevance").
    By default only the strong results show (relevance of at least [relevance] min_relevance,
    ending at the first sharp drop); --all shows the rest, --min-relevance X sets the bar.
    When none is strong the best 3 show, marked weak. `score` is the raw cosine similarity
    (--order score ranks by it, --scores shows it). Video and audio results carry their best
    moments (--moments N): adjacent windows merged, each with its picture and sound scores;
    --match both ranks the windows where picture and sound both match first, --match picture
    or sound uses that stream alone, --cut DIR also writes the moments as clips. When `lbsearch
    serve` runs on the same library, a text search is answered by it (the same results, warm);
    --no-server searches here. --path globs match the absolute path (`*` crosses folders; a pattern
    not starting with / ./ or * matches at any depth, so "holiday/*.jpg" works). --after and
    --before compare the file's modification time in local time: a date means the whole day
    (--after from its start, --before up to its end), a date-time is exact. Files without a
    duration (pictures) fail --min/--max-duration.

    Exit status: 0 results printed; 1 no match, an empty library, or an error such as a
    missing library or an unreadable --like file; 2 a usage error (bad option, date, modality
    or weight); 3 a model that cannot be loaded; 130 interrupted.
    """
    quiet_idle_threads()
    one_shot_blas()
    from lbsearch.search import QueryRequest, parse_query

    if as_json and paths_only:
        raise UsageError("--json and --paths do not go together", "choose one output")
    config = settings(ctx)
    search = parse_query(  # before the library opens: usage errors come first
        QueryRequest(
            texts=tuple(text or ()),
            nots=tuple(not_text or ()),
            like=tuple(like or ()),
            not_like=tuple(not_like or ()),
            modalities=tuple(modality or ()),
            paths=tuple(path or ()),
            after=after,
            before=before,
            min_duration=min_duration,
            max_duration=max_duration,
            limit=limit,
            min_score=min_score,
            order=order,
            min_relevance=min_relevance,
            all=show_all,
            match=match,
            moments=moments,
        )
    )
    _note_paths_given_as_text(text or [])
    answer = _ask_server(library, config, search, (backend, device, dtype), no_server)
    if answer is None:
        answer = _search_here(library, config, search, (backend, device, dtype))
    if answer.no_match is not None:
        _say(answer.no_match)
        raise typer.Exit(1)
    _show(answer, search, as_json=as_json, paths_only=paths_only, scores=show_scores)
    if cut_dir is not None:
        write_clips(answer.hits, cut_dir)


def _ask_server(
    library: Path | None, config: Config, search: Query, runtime: Runtime, no_server: bool
) -> Answer | None:
    """The answer of an `lbsearch serve` running on the library, if one answers at once."""
    from .query_server import ask_server, wanted

    if not wanted(no_server, search):
        return None
    from lbsearch.library.folder import locate_library

    return ask_server(locate_library(library, config.library).path, config, search, runtime)


def _search_here(library: Path | None, config: Config, search: Query, runtime: Runtime) -> Answer:
    backend, device, dtype = runtime
    early = start_text_encoding(config, search, backend, device, dtype)
    from lbsearch.library import Library  # after the text encoding has started
    from lbsearch.search import SearchEngine

    from .one_shot import keep_until_exit
    from .query_server import Answer

    with Library.open(library, config=config, mapped=True) as lib:  # one search: no copies
        engine = SearchEngine(
            lib, config, make_encoders(lib, config, device, dtype, backend, early=early)
        )
        engine.prepare(search)  # while the text is being encoded
        hits = engine.search(search)
        keep_until_exit(engine, early)  # the text tower's session alone takes ~20 ms to free
        if not hits:
            return Answer([], [], engine.explain_no_match(search))
    return Answer(hits, [hit_json(rank, hit) for rank, hit in enumerate(hits, 1)])


def _show(answer: Answer, search: Query, *, as_json: bool, paths_only: bool, scores: bool) -> None:
    hits = answer.hits
    if hits[0].weak:
        _say(
            f"lbsearch: no result cleared the relevance bar; showing the best {len(hits)}, "
            "marked weak (--all shows every result)"
        )
    if paths_only:
        sys.stdout.write("".join(f"{hit.path}\n" for hit in hits))
    elif as_json or not terminal():
        _print_json(answer.rows)
    else:
        _print_table(hits, scores=scores, cut=search.cut)


def write_clips(hits: list[Hit], folder: Path) -> None:
    """Each result's moments as clips in `folder`, named after the file and span; stderr names
    each clip (stdout stays what it would be without --cut). A file that cannot be cut (gone,
    unreadable) is reported and skipped: the other clips are still worth having."""
    from lbsearch.errors import LbsearchError
    from lbsearch.media.classify import VIDEO_EXTS
    from lbsearch.media.clip import clip_path, cut
    from lbsearch.types import Modality

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--cut {folder}: cannot create it ({exc.strerror})", "give a folder you can write"
        ) from None
    for hit in hits:
        source = Path(hit.path)
        video = hit.modality is Modality.VIDEO or source.suffix.lower().lstrip(".") in VIDEO_EXTS
        for moment in hit.moments:
            end = min(moment.end_s, hit.duration_s or moment.end_s)  # a last window's rounding
            out = clip_path(folder, source, moment.start_s, end, video)
            try:
                cut(source, moment.start_s, end, out)
            except LbsearchError as exc:
                _say(f"lbsearch: {hit.path}: no clip ({exc})")
                continue
            _say(f"clip: {out}")


def _note_paths_given_as_text(texts: list[str]) -> None:
    """TEXT is always a text here (the shell already removed any quotes), but a path typed
    there is most likely meant as an example: say how it was taken."""
    from lbsearch.search import looks_like_path

    for text in texts:
        if looks_like_path(text):
            _say(f"note: {text!r} is searched as a text; to search by example use --like {text}")


def quiet_idle_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning: torch and faiss take turns on the same cores
    in a query, and spinning made a warm 100k-segment query 4x slower (316 ms against 80 ms).
    Must run before torch or faiss load; indexing keeps the default (busy encoder)."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def one_shot_blas() -> None:
    """numpy's BLAS runs on one thread in a one-shot query: the pool it starts on import spent
    ~80 ms of CPU spinning on the second core, which the text tower and the imports needed (a
    cold query, 2 cores: 625 against 715 ms p50); a query's BLAS products are a few rows. A warm
    engine gains nothing from it (41 ms either way at 100k segments, alternated query by query
    in one process), so `browse` and `serve` keep numpy's default. Must run before numpy loads."""
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def make_encoders(
    lib: Library,
    config: Config,
    device: str | None,
    dtype: str | None,
    backend: str | None = None,
    early: LanguageBindEmbedder | None = None,
) -> Embedder:
    """The embedder on the checkpoints the library was indexed with (tests replace this with
    FakeEncoders); `early`: the one-shot embedder already encoding the query's texts."""
    from lbsearch.search.shell import library_embedder

    if early is not None:
        return early.for_models({m: s.model_id for m, s in lib.modality_states().items()})
    return library_embedder(lib, config, backend=backend, device=device, dtype=dtype)


def start_text_encoding(
    config: Config, search: Query, backend: str | None, device: str | None, dtype: str | None
) -> LanguageBindEmbedder:
    """Encode the query's texts on a thread, with the configured checkpoint's text tower, while
    the main thread imports the catalog and opens the library (about a quarter of a second saved
    on a cold query). LanguageBind's checkpoints share one text tower, so the library's own
    checkpoints almost always find these vectors ready; any failure here is left for the main
    thread to meet and report."""
    import threading

    from lbsearch.embedder import open_embedder
    from lbsearch.models.hub import available_without_download
    from lbsearch.types import Modality

    embedder = open_embedder(
        config, backend=backend, device=device, dtype=dtype, notify=_say, quick_start=True
    )
    texts = [term.text for term in search.terms if term.text is not None]
    modality = (search.modalities or (Modality.IMAGE,))[0]

    def encode() -> None:
        with contextlib.suppress(Exception):
            embedder.embed_texts(modality, texts)

    # never start a download for a checkpoint the library may not even use
    if texts and available_without_download(embedder.reference(modality)):
        threading.Thread(target=encode, name="lbsearch-early-text", daemon=True).start()
    return embedder


def terminal() -> bool:
    return sys.stdout.isatty()


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _print_json(rows: list[dict[str, Any]]) -> None:
    """The hits' JSON rows (`hit_json`), made here or by a server from the same hits."""
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


def hit_json(rank: int, hit: Hit) -> dict[str, Any]:
    """A hit's JSON form: the core's (`lbsearch.search.shell`), shared with `serve`."""
    from lbsearch.search.shell import hit_json as core_hit_json

    return core_hit_json(rank, hit)


def format_relevance(hit: Hit) -> str:
    return "" if hit.relevance is None else f"{hit.relevance:.1f}"


_STREAM_MARKS = {"picture": "P", "sound": "S", "both": "P+S"}


def _moment_cells(hit: Hit) -> tuple[str, str]:
    """The time and match cells: each moment's span and stream on a line (the hit's span for
    a file without moments)."""
    from lbsearch.search import shell

    if not hit.moments:
        return shell.format_span(hit), ""
    spans = [shell.format_seconds(m.start_s, m.end_s) for m in hit.moments]
    return "\n".join(spans), "\n".join(_STREAM_MARKS[m.matched()] for m in hit.moments)


def _print_table(hits: list[Hit], *, scores: bool = False, cut: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("relevance", justify="right")
    if scores:
        table.add_column("score", justify="right")
    table.add_column("modality")
    table.add_column("path", overflow="fold")  # a path is worth more than a tidy row
    table.add_column("time", no_wrap=True)
    table.add_column("match", no_wrap=True)  # P picture, S sound, P+S both (a moment's)
    for rank, hit in enumerate(hits, 1):
        path = Text(hit.path)
        if hit.offline:  # kept from a folder the last run could not list
            path.append(" (offline)", style="yellow")
        if hit.weak:
            path.append(" (weak)", style="dim")
        numbers = [format_relevance(hit)] + ([f"{hit.score:.3f}"] if scores else [])
        spans, streams = _moment_cells(hit)
        table.add_row(str(rank), *numbers, hit.modality.value, path, spans, streams)
    console = Console(highlight=False)
    console.print(table)
    if cut and not hits[0].weak:
        many = len(hits)
        console.print(f"{many} strong result{'s' * (many != 1)} (--all shows the rest)")
