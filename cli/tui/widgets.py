"""The browse screen's widgets: the results table and the preview pane.

Importing this module imports textual_image.widget, which asks the terminal once what graphics
it supports; that must happen before the Textual app takes the terminal over (cli/browse.py
imports the app, and so this module, before running it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static
from textual_image.widget import Image as PictureWidget

from .preview import PATH_WIDTH, TIMED, Preview, display_path, span_text

if TYPE_CHECKING:
    from lbsearch.search import Hit


RELEVANCE_HEADER = "rel."  # short: on an 80-column terminal the path needs the room
STREAM_MARKS = {"picture": "P", "sound": "S", "both": "P+S"}


def time_column(hit: Hit) -> str:
    """The best moment's span and the stream that matched (P, S, P+S); the segment's span for
    a hit without moments; nothing for pictures."""
    if hit.moments:
        best = hit.moments[0]
        return f"{span_text(best.start_s, best.end_s)} {STREAM_MARKS[best.matched()]}"
    return span_text(hit.start_s, hit.end_s) if hit.modality in TIMED else ""


def relevance_column(hit: Hit) -> str:
    """Relevance (calibrated; the raw cosine where the modality has no calibration yet)."""
    return f"{hit.score:.3f}" if hit.relevance is None else f"{hit.relevance:.1f}"


def count_line(hits: list[Hit], show_all: bool) -> tuple[str, str]:
    """The status line's count and the a key's hint: strong results (the cut-off), all of
    them, or the best few marked weak when none cleared the bar."""
    many = len(hits)
    plural = "s" if many != 1 else ""
    if show_all:
        return f"{many} result{plural}", "(a: strong only)"
    if hits and hits[0].weak:
        return f"no strong result: the best {many}, marked weak,", "(a: all)"
    return f"{many} strong result{plural}", "(a: all)"


def cut_span(hit: Hit) -> tuple[float, float]:
    """What x cuts: the hit's best moment, else its segment (clamped to the file's length)."""
    start, end = (
        (hit.moments[0].start_s, hit.moments[0].end_s) if hit.moments else (hit.start_s, hit.end_s)
    )
    return start, min(end, hit.duration_s or end)


class ResultsTable(DataTable[str | Text]):
    """One row per hit: relevance, modality (weak results marked), time span and matching
    stream (video/audio), path. Enter opens the file."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.hits: list[Hit] = []

    def on_mount(self) -> None:
        self.add_column(RELEVANCE_HEADER, key="relevance")
        self.add_column("modality", key="modality")
        self.add_column("time", key="time")
        self.add_column("path", key="path")

    def show_hits(self, hits: Sequence[Hit], *, keep_cursor: bool = False) -> None:
        row = self.cursor_row if keep_cursor else 0
        self.hits = list(hits)
        self.clear()
        cells = [(relevance_column(h), _modality_cell(h), time_column(h)) for h in self.hits]
        width = self.path_width(cells)
        for number, (hit, (score, modality, span)) in enumerate(zip(self.hits, cells, strict=True)):
            path = display_path(hit.path, width)
            self.add_row(Text(score, justify="right"), modality, span, path, key=str(number))
        if self.hits:
            self.move_cursor(row=min(row, len(self.hits) - 1))

    def path_width(self, cells: list[tuple[str, str, str]]) -> int:
        """What the path column can have of the table's width once the others are drawn, so
        Textual never crops a path (which would drop the file name at its end)."""
        if not self.size.width:
            return PATH_WIDTH
        headers = (RELEVANCE_HEADER, "modality", "time")
        others = sum(max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers))
        padding = 2 * self.cell_padding * 4
        scrolls = len(cells) + 1 > self.size.height  # the scroll bar will take its columns
        scrollbar = self.styles.scrollbar_size_vertical if scrolls else 0
        return self.size.width - others - padding - scrollbar

    def on_resize(self) -> None:
        if self.hits:
            self.show_hits(self.hits, keep_cursor=True)

    @property
    def selected(self) -> Hit | None:
        if not self.hits or not 0 <= self.cursor_row < len(self.hits):
            return None
        return self.hits[self.cursor_row]


class PreviewPane(VerticalScroll):
    """The selected hit: its picture (image, video frame, depth, thermal) above its facts."""

    DEFAULT_CSS = """
    PreviewPane { padding: 0 1; }
    PreviewPane > #preview-title { text-style: bold; }
    PreviewPane > #preview-picture { width: auto; height: 16; }
    PreviewPane > #preview-facts { margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="preview-title")
        yield PictureWidget(None, id="preview-picture")
        yield Static("", id="preview-facts")

    def on_mount(self) -> None:
        self.show(None)

    def show(self, preview: Preview | None) -> None:
        title = self.query_one("#preview-title", Static)
        picture = self.query_one("#preview-picture", PictureWidget)
        facts = self.query_one("#preview-facts", Static)
        if preview is None:
            title.update("")
            facts.update("")
            picture.image = None
            picture.display = False
            return
        title.update(Text(preview.title))
        picture.image = preview.picture
        picture.display = preview.picture is not None
        facts.update(facts_text(preview))

    def loading_message(self, text: str) -> None:
        self.query_one("#preview-facts", Static).update(Text(text, style="dim"))


def facts_text(preview: Preview) -> Text:
    width = max((len(key) for key, _ in preview.facts), default=0)
    text = Text()
    for key, value in preview.facts:
        text.append(f"{key:<{width}}  ", style="dim")
        text.append(value + "\n")
    if preview.note:
        text.append(preview.note, style="red")
    return text


def _modality_cell(hit: Hit) -> str:
    """The modality, marked when the file's folder could not be listed at the last run and when
    the result is weak (shown although nothing cleared the relevance bar)."""
    marks = [m for m, on in (("offline", hit.offline), ("weak", hit.weak)) if on]
    return hit.modality.value + "".join(f" ({m})" for m in marks)
