"""`BrowseApp`: the terminal UI of `lbsearch browse`.

The search engine is injected and stays loaded between queries (its towers load on the first
search, in a worker, while the screen is already up). The query box speaks the core's box
syntax (`lbsearch.search.parse_box`: words, dog:2, -cat, like:PATH, m:video, after:DATE...), so
it means what `lbsearch query` means. Searches and previews run in thread workers; a newer
search or selection supersedes the older one, whose result is dropped. The engine is used by
one worker at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from lbsearch.errors import LbsearchError
from lbsearch.media.classify import VIDEO_EXTS
from lbsearch.types import Modality

from .opener import Launched, OpenCommand, open_in_viewer
from .preview import (
    TIMED,
    MediaKey,
    MediaRead,
    clock,
    compose_preview,
    media_key,
    read_media,
)
from .widgets import PreviewPane, ResultsTable, count_line, cut_span

if TYPE_CHECKING:
    from lbsearch.search import Hit, QueryRequest, SearchEngine

MODALITY_CYCLE: tuple[Modality | None, ...] = (
    None,
    Modality.IMAGE,
    Modality.VIDEO,
    Modality.AUDIO,
    Modality.DEPTH,
    Modality.THERMAL,
)

Opener = Callable[[str, float, bool], OpenCommand | Launched]
VIEWER_GRACE_S = 1.0  # a viewer still running this long after its start has opened the file


def default_opener(path: str, start_s: float, timed: bool) -> Launched:
    return open_in_viewer(path, start_s, timed=timed)


VIDEO_SUFFIXES = {f".{ext}" for ext in VIDEO_EXTS}
VIEWER_HINT = "install mpv or vlc to open video and audio at the segment's time"


@dataclass(frozen=True)
class Request:
    """What the results list answers: the query box's text and what it parsed to."""

    box: str
    query: QueryRequest

    def describe(self) -> str:
        q = self.query
        if len(q.like) == 1 and not (q.texts or q.nots or q.not_like):
            return f"similar to {Path(q.like[0]).name}"  # the box shows the whole path
        return repr(self.box)


def next_modality(current: Modality | None) -> Modality | None:
    return MODALITY_CYCLE[(MODALITY_CYCLE.index(current) + 1) % len(MODALITY_CYCLE)]


def single_modality(query: QueryRequest) -> Modality | None:
    """The one modality a request is filtered to; None for all, for several, or for a name the
    search will report as unknown."""
    if len(query.modalities) != 1:
        return None
    try:
        return Modality.parse(query.modalities[0])
    except LbsearchError:
        return None


class QueryInput(Input):
    """The query box; Down or Escape goes to the results."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,escape", "app.focus_results", "Results", show=False),
    ]


class BrowseApp(App[None]):
    TITLE = "lbsearch browse"
    CSS = """
    #query { margin: 0 0; }
    #status { height: auto; max-height: 6; padding: 0 1; color: $text-muted; }
    #main { height: 1fr; }
    #results { width: 2fr; }
    #preview { width: 1fr; border-left: vkey $surface-lighten-2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_query", "Query"),
        Binding("s", "similar", "Similar"),
        Binding("m", "cycle_modality", "Modality"),
        Binding("c", "copy_path", "Copy path"),
        Binding("x", "cut", "Cut clip"),
        Binding("a", "toggle_all", "All/strong"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        engine: SearchEngine,
        *,
        query: str = "",
        limit: int = 50,
        opener: Opener = default_opener,
        clip_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.clip_dir = clip_dir  # where x writes clips; None: the current folder
        self.engine = engine
        self._searched = False
        self._focus_results = False
        self._engine_lock = threading.Lock()
        self.initial_query = query
        self.limit = limit
        self.opener = opener
        self.modality: Modality | None = None
        self.show_all = False  # the a key: every result, not only those above the cut-off
        self.request: Request | None = None
        self._media: dict[MediaKey, MediaRead] = {}

    def compose(self) -> ComposeResult:
        yield QueryInput(
            placeholder="Search: words, or a file path for any-to-any (Enter)", id="query"
        )
        yield Static("", id="status")
        with Horizontal(id="main"):
            yield ResultsTable(id="results")
            yield PreviewPane(id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self._status("type a query and press Enter")
        if self.initial_query:
            self.query_one(QueryInput).value = self.initial_query
            self.submit(self.initial_query, focus_results=True)
        else:
            self.query_one(QueryInput).focus()

    # ------------------------------------------------------------------ searching

    def submit(self, box: str, *, focus_results: bool = False) -> None:
        """Search for what the query box says; a box that cannot be meant is an error line."""
        from lbsearch.search import parse_box

        try:
            request = Request(box, parse_box(box))
        except LbsearchError as exc:
            self._failed(exc)
            return
        self.modality = single_modality(request.query)  # the box's m: is the filter
        self.start(request, focus_results=focus_results)

    def start(self, request: Request, *, focus_results: bool = False) -> None:
        """Run `request` with the current modality filter; the newest request wins. The results
        take the focus when they come if `focus_results` (a loading widget cannot have it)."""
        self.request = request
        self._focus_results = focus_results
        table = self.query_one(ResultsTable)
        table.loading = True
        loading = "searching" if self._searched else "loading the models and searching"
        self._status(f"{loading} {request.describe()}…")
        self._search(request)

    @work(thread=True, exclusive=True, group="search")
    def _search(self, request: Request) -> None:
        worker = get_current_worker()
        started = time.perf_counter()
        try:
            hits, empty = self._run(request)
        except Exception as exc:  # the UI stays up: a bad query or a missing model is shown
            if not worker.is_cancelled:
                self.call_from_thread(self._failed, exc)
            return
        if not worker.is_cancelled:
            elapsed = time.perf_counter() - started
            self.call_from_thread(self._show_results, request, hits, empty, elapsed)

    def _run(self, request: Request) -> tuple[list[Hit], str]:
        """The hits, and when there are none, the engine's reason."""
        from lbsearch.search import parse_query

        # the strong results (the default cut-off, as `lbsearch query`), or all with the a key
        query = parse_query(replace(request.query, limit=self.limit, all=self.show_all))
        with self._engine_lock:
            hits = self.engine.search(query)
            return hits, ("" if hits else self.engine.explain_no_match(query))

    def _show_results(self, request: Request, hits: list[Hit], empty: str, elapsed: float) -> None:
        self._searched = True
        table = self.query_one(ResultsTable)
        table.loading = False
        table.show_hits(hits)
        if self._focus_results and hits:
            table.focus()
        self.preview_selected()  # the cursor may not move (row 0 before and after): no event
        if not hits:
            self._status(f"{empty} (for {request.describe()})")
            return
        count, hint = count_line(hits, self.show_all)
        self._status(f"{count} for {request.describe()} in {elapsed:.2f} s {hint}")

    def _failed(self, exc: Exception) -> None:
        self.query_one(ResultsTable).loading = False
        if isinstance(exc, LbsearchError):
            message = f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        else:
            message = f"{type(exc).__name__}: {exc}"
        self._status(f"error: {message}", error=True)

    def _status(self, text: str, *, error: bool = False) -> None:
        where = ",".join(self.request.query.modalities) if self.request else ""
        where = where or (self.modality.value if self.modality else "all")
        line = Text.assemble(("filter: ", "dim"), (where, "bold"), ("  │  ", "dim"))
        line.append(text, style="red" if error else "")
        self.query_one("#status", Static).update(line)

    # ------------------------------------------------------------------ preview

    @on(DataTable.RowHighlighted, "#results")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.preview_selected()

    def preview_selected(self) -> None:
        """Show the selected hit in the preview pane (the file read in a worker unless seen)."""
        hit = self.query_one(ResultsTable).selected
        if hit is None:
            self.query_one(PreviewPane).show(None)
            return
        read = self._media.get(media_key(hit))
        if read is not None:
            self.query_one(PreviewPane).show(compose_preview(hit, read))
            return
        self.query_one(PreviewPane).loading_message(f"reading {Path(hit.path).name}…")
        self._preview(hit)

    @work(thread=True, exclusive=True, group="preview")
    def _preview(self, hit: Hit) -> None:
        read = read_media(hit)
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._show_preview, hit, read)

    def _show_preview(self, hit: Hit, read: MediaRead) -> None:
        self._media[media_key(hit)] = read
        if self.query_one(ResultsTable).selected == hit:
            self.query_one(PreviewPane).show(compose_preview(hit, read))

    # ------------------------------------------------------------------ actions

    @on(DataTable.RowSelected, "#results")
    def _open(self, event: DataTable.RowSelected) -> None:
        hit = self.query_one(ResultsTable).selected
        if hit is None:
            return
        timed = hit.modality in TIMED
        name = Path(hit.path).name
        try:
            opened = self.opener(hit.path, hit.start_s, timed)
        except OSError as exc:
            program = f"{exc.filename}: " if exc.filename else ""
            reason = f"{program}{exc.strerror or exc}"
            self.notify(f"could not open {name} ({reason}); {VIEWER_HINT}", severity="error")
            return
        if isinstance(opened, Launched) and opened.process is not None:
            self._watch_viewer(opened, hit)  # report only once it has not failed at once
        else:
            self._opened(opened.command if isinstance(opened, Launched) else opened, hit)

    @work(thread=True, group="viewer")
    def _watch_viewer(self, launched: Launched, hit: Hit) -> None:
        """Say "opened" when the viewer is still up after a moment or exits cleanly; say why
        when it exits with an error (xdg-open exits 3 when nothing can show the file)."""
        worker = get_current_worker()
        started, reported = time.monotonic(), False
        while not worker.is_cancelled:
            code = launched.exit_code()
            if code not in (None, 0):
                self.call_from_thread(self._viewer_failed, launched, hit, code)
                return
            if not reported and (code == 0 or time.monotonic() - started >= VIEWER_GRACE_S):
                self.call_from_thread(self._opened, launched.command, hit)
                reported = True
            if code == 0:
                return
            time.sleep(0.05)

    def _viewer_failed(self, launched: Launched, hit: Hit, code: int) -> None:
        why = launched.complaint()
        name, label = Path(hit.path).name, launched.command.label
        detail = f"exit {code}" + (f": {why}" if why else "")
        hint = f"; {VIEWER_HINT}" if hit.modality in TIMED else ""
        self.notify(f"could not open {name} with {label} ({detail}){hint}", severity="error")

    def _opened(self, command: OpenCommand, hit: Hit) -> None:
        name, timed = Path(hit.path).name, hit.modality in TIMED
        if command.seeks:
            self.notify(f"opened {name} with {command.label} at {clock(hit.start_s)}")
        elif timed:
            self.notify(
                f"opened {name} with {command.label} from the start; {VIEWER_HINT}"
                f" ({clock(hit.start_s)})",
                severity="warning",
            )
        else:
            self.notify(f"opened {name} with {command.label}")

    @on(Input.Submitted, "#query")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.submit(text, focus_results=True)

    def action_focus_query(self) -> None:
        self.query_one(QueryInput).focus()

    def action_focus_results(self) -> None:
        self.query_one(ResultsTable).focus()

    def action_similar(self) -> None:
        hit = self.query_one(ResultsTable).selected
        if hit is None:
            self.notify("select a result first", severity="warning")
            return
        from lbsearch.search import QueryRequest, format_box

        kept = self.request.query.modalities if self.request else ()
        query = QueryRequest(like=(hit.path,), modalities=kept)  # the filter stays
        box = format_box(query)
        self.query_one(QueryInput).value = box  # the box says what the results answer
        self.start(Request(box, query))

    def action_cycle_modality(self) -> None:
        """The next modality filter, written into the box's m: (one filter, shown where it is
        typed) and searched again."""
        from lbsearch.search import format_box, parse_box

        box = self.query_one(QueryInput)
        try:  # before a search, what is typed so far gains the m:
            query = self.request.query if self.request else parse_box(box.value)
        except LbsearchError as exc:
            self._failed(exc)
            return
        self.modality = next_modality(single_modality(query))
        query = replace(query, modalities=(self.modality.value,) if self.modality else ())
        box.value = format_box(query)
        if self.request is not None:
            self.start(Request(box.value, query))
        else:
            self._status("type a query and press Enter")

    def action_toggle_all(self) -> None:
        """Show every result, or again only those above the relevance cut-off."""
        self.show_all = not self.show_all
        if self.request is not None:
            self.start(self.request)
        else:
            self._status("all results" if self.show_all else "strong results only")

    def action_copy_path(self) -> None:
        hit = self.query_one(ResultsTable).selected
        if hit is None:
            return
        self.copy_to_clipboard(hit.path)
        self.notify(f"copied {hit.path}")

    def action_cut(self) -> None:
        """Write the selected video or audio result's span as a clip (in a worker: re-encoding
        takes seconds)."""
        hit = self.query_one(ResultsTable).selected
        if hit is None:
            return
        if hit.modality not in TIMED:
            self.notify("only video and audio results have a span to cut", severity="warning")
            return
        start, end = cut_span(hit)
        self.notify(f"cutting {clock(start)}-{clock(end)} of {Path(hit.path).name}…")
        self._cut(hit, self.clip_dir or Path.cwd())

    @work(thread=True, group="cut")
    def _cut(self, hit: Hit, folder: Path) -> None:
        from lbsearch.media.clip import clip_path, cut

        source = Path(hit.path)
        try:
            video = hit.modality is Modality.VIDEO or source.suffix.lower() in VIDEO_SUFFIXES
            start, end = cut_span(hit)
            out = clip_path(folder, source, start, end, video)
            result = cut(source, start, end, out)
        except LbsearchError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            self.call_from_thread(self.notify, f"{exc.message}{hint}", severity="error")
            return
        how = "picture copied" if result.video == "copy" else "re-encoded"
        self.call_from_thread(self.notify, f"wrote {result.path} ({how})")
