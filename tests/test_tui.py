"""`lbsearch browse`: the Textual app driven with Pilot over a fake-encoder library, the preview
readers, and the choice of viewer command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("textual")
pytest.importorskip("textual_image")

from textual.pilot import Pilot
from textual.worker import WorkerState
from textual_image._terminal import CellSize, get_cell_size
from textual_image.widget import HalfcellImage

from lbsearch.cli.tui import widgets
from lbsearch.cli.tui.app import BrowseApp, QueryInput, next_modality
from lbsearch.cli.tui.opener import OpenCommand, open_command
from lbsearch.cli.tui.preview import build_preview, clock, display_path, human_size
from lbsearch.cli.tui.widgets import ResultsTable
from lbsearch.config import Config, RelevanceConfig
from lbsearch.errors import UsageError
from lbsearch.indexers.pipeline import IndexOptions, run_index
from lbsearch.library import Library
from lbsearch.media.preview import grey_from_depth
from lbsearch.search import Hit, QueryRequest, SearchEngine, parse_query
from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_sample_media
from lbsearch.types import Modality

# The packaged defaults (the user's settings never reach tests) without the relevance cut-off:
# these tests are about the screen, and expect every file of the sample library to show
# (tests/test_search.py tests the cut-off).
CONFIG = Config(relevance=RelevanceConfig(min_relevance=-1e9, autocut_gap=0.0))
FIXED_MTIME = 1_700_000_000.0  # 2023-11-14, so the preview's "modified" line never changes
SIZE = (140, 40)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Image.Image.getdata:DeprecationWarning"  # textual-image on Pillow 13
)


def build_library(root: Path) -> Path:
    """Sample media (every modality) indexed with the fake encoders; returns the library path."""
    media = root / "media"
    for path in write_sample_media(media):
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    with Library.open(root / "lib", config=CONFIG, write=True) as lib:
        run_index([media], lib, FakeEncoders(), CONFIG, IndexOptions())
    return root / "lib"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    path = build_library(tmp_path_factory.mktemp("tui"))
    with Library.open(path, config=CONFIG) as lib:
        yield lib


@pytest.fixture
def engine(library: Library) -> SearchEngine:
    return SearchEngine(library, CONFIG, FakeEncoders())


@pytest.fixture(autouse=True)
def stable_pictures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half-block pictures at a fixed cell size, whatever terminal runs the tests."""
    monkeypatch.setattr(widgets, "PictureWidget", HalfcellImage)
    monkeypatch.setattr(get_cell_size, "_result", CellSize(10, 20), raising=False)


def drive(app: BrowseApp, script: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await script(pilot)

    asyncio.run(main())


async def settle(pilot: Pilot[None], timeout_s: float = 60.0) -> None:
    """Wait until no search or preview worker is pending or running (a superseded one is
    cancelled, which wait_for_complete would raise), then let their messages be handled."""
    deadline = time.monotonic() + timeout_s
    for _ in range(3):
        while any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers):
            assert time.monotonic() < deadline, "the workers did not finish"
            await pilot.pause(0.01)
        await pilot.pause()


def rows(app: BrowseApp) -> list[Hit]:
    return app.query_one(ResultsTable).hits


def status(app: BrowseApp) -> str:
    return str(app.query_one("#status").render())


def test_typing_a_query_lists_every_file_with_a_preview(engine: SearchEngine) -> None:
    app = BrowseApp(engine)

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.focused, QueryInput)
        await pilot.press(*"dog", "enter")
        await settle(pilot)
        hits = rows(app)
        assert len(hits) == 7 == app.query_one(ResultsTable).row_count
        assert {h.modality for h in hits} == set(Modality)
        ranks = [h.score if h.relevance is None else h.relevance for h in hits]
        assert ranks == sorted(ranks, reverse=True)  # the engine's order: relevance
        assert "7 strong results for 'dog'" in status(app)
        assert isinstance(app.focused, ResultsTable)
        facts = str(app.query_one("#preview-facts").render())
        assert "modality" in facts and hits[0].modality.value in facts

    drive(app, script)


def test_m_cycles_the_modality_filter_and_searches_again(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query="a red ball")
    seen: list[set[Modality]] = []

    async def script(pilot: Pilot[None]) -> None:
        assert len(rows(app)) == 7
        for _ in range(6):
            await pilot.press("m")
            await settle(pilot)
            seen.append({h.modality for h in rows(app)})
        assert "filter: all" in status(app)

    drive(app, script)
    assert seen == [{m} for m in list(Modality)] + [set(Modality)]
    assert next_modality(Modality.THERMAL) is None


def test_s_finds_files_similar_to_the_selected_one(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query="sunset")

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("m")  # images only
        await settle(pilot)
        chosen = rows(app)[0]
        await pilot.press("m", "m", "m", "m", "m")  # back to all
        await settle(pilot)
        while app.query_one(ResultsTable).selected != chosen:
            await pilot.press("down")
        await pilot.press("s")
        await settle(pilot)
        paths = [h.path for h in rows(app)]
        assert chosen.path not in paths and len(paths) == 6
        assert "similar to" in status(app)
        title = str(app.query_one("#preview-title").render())
        assert title == Path(paths[0]).name  # the preview follows the new first row

    drive(app, script)


def test_enter_opens_at_the_segment_start_and_c_copies(engine: SearchEngine) -> None:
    opened: list[tuple[str, float, bool]] = []

    def opener(path: str, start_s: float, timed: bool) -> OpenCommand:
        opened.append((path, start_s, timed))
        return OpenCommand(("mpv", f"--start={start_s}", path), seeks=True)

    app = BrowseApp(engine, query="humming", opener=opener)

    async def script(pilot: Pilot[None]) -> None:
        for _ in range(3):
            await pilot.press("m")  # audio only
        await settle(pilot)
        hit = rows(app)[0]
        await pilot.press("enter", "c")
        assert opened == [(hit.path, hit.start_s, True)]
        assert app.clipboard == hit.path

    drive(app, script)


def test_slash_focuses_the_query_and_letters_there_are_text(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query="dog")

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.focused, ResultsTable)
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"sqmc")
        await settle(pilot)
        assert isinstance(app.focused, QueryInput)
        assert app.query_one(QueryInput).value == "sqmc" and app.modality is None
        await pilot.press("escape")
        assert isinstance(app.focused, ResultsTable)
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


class BrokenEngine:
    def search(self, query: object) -> list[Hit]:
        raise UsageError("no such modality", "index something first")


def test_a_failing_search_is_shown_not_raised() -> None:
    app = BrowseApp(BrokenEngine(), query="dog")  # type: ignore[arg-type]

    async def script(pilot: Pilot[None]) -> None:
        text = status(app)
        assert "error: no such modality (index something first)" in text
        assert rows(app) == []

    drive(app, script)


# ---------------------------------------------------------------------------- preview


def _hit(path: Path, modality: Modality, start_s: float = 0.0) -> Hit:
    size = path.stat().st_size
    return Hit(str(path), modality, 0.5, start_s, start_s + 2, 1, None, size, FIXED_MTIME)


def test_previews_of_each_modality(tmp_path: Path) -> None:
    write_sample_media(tmp_path)
    video = build_preview(_hit(tmp_path / "bouncing_ball.mp4", Modality.VIDEO, 4.0))
    facts = dict(video.facts)
    assert video.picture is not None and video.picture.size == (320, 240)
    assert facts["video"].startswith("h264 320x240") and facts["segment"] == "00:04-00:06"
    assert facts["audio"].startswith("aac 16000 Hz")
    audio = build_preview(_hit(tmp_path / "hum.flac", Modality.AUDIO))
    assert audio.picture is None and dict(audio.facts)["length"] == "00:14"
    depth = build_preview(_hit(tmp_path / "depth" / "corridor_depth.png", Modality.DEPTH))
    assert depth.picture is not None and depth.picture.mode == "L"
    assert depth.picture.getextrema() == (0, 255)
    assert dict(depth.facts)["pixels"] == "320 x 240" and "values" in dict(depth.facts)
    image = build_preview(_hit(tmp_path / "sunset_beach.jpg", Modality.IMAGE))
    assert image.picture is not None and dict(image.facts)["pixels"] == "320 x 240"
    (tmp_path / "whistle.wav").unlink()
    gone = build_preview(
        Hit(str(tmp_path / "whistle.wav"), Modality.AUDIO, 0.1, 0, 4, 1, 4.0, 10, 0.0)
    )
    assert gone.note.startswith("cannot read") and gone.picture is None


def test_depth_grey_ignores_missing_pixels() -> None:
    import numpy as np

    raw = np.array([[0, 1000], [2000, 3000]], dtype=np.uint16)
    grey = np.asarray(grey_from_depth(raw))
    assert grey.tolist() == [[0, 0], [127, 255]]


def test_formatting_helpers() -> None:
    assert clock(75.9) == "01:15" and clock(3725) == "1:02:05"
    assert human_size(512) == "512 B" and human_size(3 * 1024 * 1024) == "3.0 MB"
    assert display_path("/x/" + "a" * 100, 20) == "a" * 10 + "…" + "a" * 9  # the name, cut
    assert (
        display_path("/photos/2024/summer/greece/beach.jpg", 30) == "/photos…ummer/greece/beach.jpg"
    )
    assert display_path(str(Path.home() / "pics" / "a.jpg")) == "~/pics/a.jpg"


def test_preview_pane_is_empty_before_any_result(engine: SearchEngine) -> None:
    app = BrowseApp(engine)

    async def script(pilot: Pilot[None]) -> None:
        assert not app.query_one("#preview-picture").display
        assert str(app.query_one("#preview-facts").render()) == ""
        await pilot.press("s")  # nothing selected: a warning, no search
        await settle(pilot)
        assert app.request is None

    drive(app, script)


# ---------------------------------------------------------------------------- opener


def _which(*found: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in found else None


def test_timed_media_open_in_a_seeking_player() -> None:
    mpv = open_command("v.mp4", 12.0, timed=True, which=_which("mpv", "vlc", "xdg-open"))
    assert mpv.argv == ("/usr/bin/mpv", "--start=12", "v.mp4") and mpv.seeks
    vlc = open_command("a.wav", 7.25, timed=True, which=_which("vlc"))
    assert vlc.argv == ("/usr/bin/vlc", "--start-time=7.250", "a.wav")


def test_other_files_open_in_the_system_viewer() -> None:
    linux = open_command("p.jpg", which=_which("mpv", "xdg-open"), platform="linux")
    assert linux.argv == ("/usr/bin/xdg-open", "p.jpg") and not linux.seeks
    assert open_command("v.mp4", 3, timed=True, platform="darwin", which=_which()).argv == (
        "open",
        "v.mp4",
    )
    assert open_command("p.jpg", platform="win32", which=_which()).argv == ()


def test_browse_command_is_registered_and_textual_loads_only_inside_it() -> None:
    from typer.testing import CliRunner

    from lbsearch.cli.main import app

    result = CliRunner().invoke(app, ["browse", "--help"])
    assert result.exit_code == 0 and "--library" in result.output
    code = "import sys, lbsearch.cli.main; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ defects found in use


def _mp4_audio_text(engine: SearchEngine) -> str:
    """A query whose best sound-track window of the video starts at 0, like its frames' window:
    both rows then share (path, start)."""
    from lbsearch.search import Query, Term

    for text in ("ball", "dog", "sunset", "a", "b", "c", "x", "y", "z", "w"):
        hits = engine.search(Query((Term(text),), modalities=(Modality.AUDIO,), limit=50))
        clip = next(h for h in hits if h.path.endswith(".mp4"))
        if clip.start_s == 0.0:
            return text
    raise AssertionError("no query text puts the sound track's best window at 0")


def test_the_preview_belongs_to_the_row_after_a_modality_change(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query=_mp4_audio_text(engine))

    async def script(pilot: Pilot[None]) -> None:
        for modality in (Modality.AUDIO, Modality.VIDEO):
            while app.modality is not modality:
                await pilot.press("m")
            await settle(pilot)
            table = app.query_one(ResultsTable)
            while not (table.selected and table.selected.path.endswith(".mp4")):
                await pilot.press("down")
                await settle(pilot)
            hit = table.selected
            facts = " ".join(str(app.query_one("#preview-facts").render()).split())
            assert f"modality {modality.value} score {hit.score:.4f}" in facts
        assert app.query_one("#preview-picture").display, "the video's key frame"

    drive(app, script)


def test_the_path_column_keeps_the_file_name_on_a_narrow_screen(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query="dog")

    async def script(pilot: Pilot[None]) -> None:
        table = app.query_one(ResultsTable)
        shown = [
            "".join(segment.text for segment in table.render_line(y))
            for y in range(1, 1 + len(rows(app)))
        ]
        for hit, line in zip(rows(app), shown, strict=True):
            assert Path(hit.path).name in line, line

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await script(pilot)

    asyncio.run(main())


def test_an_empty_library_says_how_to_index(tmp_path: Path) -> None:
    Library.open(tmp_path / "empty", write=True).close()
    with Library.open(tmp_path / "empty", config=CONFIG) as lib:
        app = BrowseApp(SearchEngine(lib, CONFIG, FakeEncoders()), query="dog")

        async def script(pilot: Pilot[None]) -> None:
            assert "nothing indexed" in status(app) and "lbsearch index" in status(app)

        drive(app, script)


def test_a_path_that_does_not_exist_is_not_searched_as_text(engine: SearchEngine) -> None:
    app = BrowseApp(engine)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press(*"/no/such/folder/cat.jpg", "enter")
        await settle(pilot)
        assert "no such file" in status(app) and rows(app) == []

    drive(app, script)


def test_enter_without_a_seeking_player_names_mpv_and_vlc(engine: SearchEngine) -> None:
    notes: list[str] = []

    def no_player(path: str, start_s: float, timed: bool) -> OpenCommand:
        return OpenCommand(("xdg-open", path))  # what open_command gives without mpv/vlc

    def nothing(path: str, start_s: float, timed: bool) -> OpenCommand:
        raise FileNotFoundError(2, "No such file or directory", "xdg-open")

    for opener in (no_player, nothing):
        app = BrowseApp(engine, query="humming", opener=opener)
        app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]

        async def script(pilot: Pilot[None], app: BrowseApp = app) -> None:
            while app.modality is not Modality.AUDIO:
                await pilot.press("m")
            await settle(pilot)
            await pilot.press("enter")

        drive(app, script)
    assert len(notes) == 2
    assert all("mpv" in note and "vlc" in note for note in notes), notes


def test_s_puts_the_similar_query_in_the_query_box(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query="sunset")

    async def script(pilot: Pilot[None]) -> None:
        chosen = rows(app)[0]
        await pilot.press("s")
        await settle(pilot)
        box = app.query_one(QueryInput).value
        assert "sunset" not in box and chosen.path in box
        await pilot.press("slash", "enter")  # the box, run again, is the same search
        await settle(pilot)
        assert chosen.path not in [h.path for h in rows(app)] and "similar to" in status(app)

    drive(app, script)


def test_a_weight_in_the_query_box_is_a_weight(engine: SearchEngine) -> None:
    from lbsearch.search import Query, Term

    app = BrowseApp(engine, query="dog:2")

    async def script(pilot: Pilot[None]) -> None:
        expected = engine.search(Query((Term("dog", weight=2.0),), limit=50))
        assert [(h.path, round(h.score, 5)) for h in rows(app)] == [
            (h.path, round(h.score, 5)) for h in expected
        ]

    drive(app, script)


# ---------------------------------------------------------------------------- issue 18 defects


def test_the_m_key_and_the_box_m_are_one_filter(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query="a red ball m:video")

    async def script(pilot: Pilot[None]) -> None:
        box = app.query_one(QueryInput)
        assert {h.modality for h in rows(app)} == {Modality.VIDEO}
        assert "filter: video" in status(app) and app.modality is Modality.VIDEO
        await pilot.press("m")  # the next one after video
        await settle(pilot)
        assert {h.modality for h in rows(app)} == {Modality.AUDIO}
        assert "m:audio" in box.value and "m:video" not in box.value, box.value
        assert "a red ball" in box.value and "filter: audio" in status(app)
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"a red ball m:image", "enter")
        await settle(pilot)  # what is typed wins over the last m
        assert {h.modality for h in rows(app)} == {Modality.IMAGE}
        assert "filter: image" in status(app)
        await pilot.press("m", "m", "m", "m", "m")  # back to every modality
        await settle(pilot)
        assert "m:" not in box.value and len({h.modality for h in rows(app)}) > 1

    drive(app, script)


def _zombies() -> list[int]:
    """Defunct children of this process."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_enter_says_when_the_viewer_failed_and_leaves_no_defunct_child(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.cli.tui import opener

    # like xdg-open without a handler: it looks around a moment, complains and exits 3
    failing = "sleep 0.3; echo \"xdg-open: no method available for opening '$0'\" >&2; exit 3"
    monkeypatch.setattr(
        opener, "open_command", lambda path, *a, **k: OpenCommand(("sh", "-c", failing, path))
    )
    notes: list[str] = []
    app = BrowseApp(engine, query="sunset m:image")  # the default opener: a real process
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        deadline = time.monotonic() + 10
        while not notes and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(0.6)

    drive(app, script)
    deadline = time.monotonic() + 5
    while _zombies() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _zombies() == [], "the viewer's exit was never collected"
    assert len(notes) == 1, notes
    assert "could not open" in notes[0] and "exit 3" in notes[0], notes
    assert "no method available" in notes[0] and "opened" not in notes[0]


def test_enter_says_opened_when_the_viewer_runs(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lbsearch.cli.tui import opener

    monkeypatch.setattr(
        opener, "open_command", lambda path, *a, **k: OpenCommand(("sh", "-c", "exit 0", path))
    )
    notes: list[str] = []
    app = BrowseApp(engine, query="sunset m:image")
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        deadline = time.monotonic() + 10
        while not notes and time.monotonic() < deadline:
            await pilot.pause(0.05)

    drive(app, script)
    assert len(notes) == 1 and notes[0].startswith("opened ") and "with sh" in notes[0], notes


class LongErrorEngine:
    def search(self, query: object) -> list[Hit]:
        raise UsageError(
            "the library at /a/rather/long/path/to/a/library/folder cannot be searched today",
            "run `lbsearch index /a/rather/long/path/to/some/media` first, then search again",
        )


def test_an_error_line_wraps_instead_of_being_cut() -> None:
    app = BrowseApp(LongErrorEngine(), query="dog")  # type: ignore[arg-type]

    async def script(pilot: Pilot[None]) -> None:
        widget = app.query_one("#status")
        shown = " ".join(
            "".join(segment.text for segment in widget.render_line(y)).strip()
            for y in range(widget.size.height)
        )
        assert widget.size.height > 1
        assert "then search again" in shown and "cannot be searched today" in shown, shown

    async def main() -> None:
        async with app.run_test(size=(70, 24)) as pilot:
            await settle(pilot)
            await script(pilot)

    asyncio.run(main())


def test_x_cuts_the_selected_span_into_a_clip(engine: SearchEngine, tmp_path: Path) -> None:
    import av

    notes: list[str] = []
    app = BrowseApp(engine, query="a red ball m:video", clip_dir=tmp_path)
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]

    selected: list[Hit] = []

    async def script(pilot: Pilot[None]) -> None:
        selected.append(rows(app)[0])
        await pilot.press("x")
        deadline = time.monotonic() + 60
        while not any(n.startswith("wrote") for n in notes) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        await pilot.press("x")  # the same span again: a second file, never an overwrite
        while sum(n.startswith("wrote") for n in notes) < 2 and time.monotonic() < deadline:
            await pilot.pause(0.05)

    drive(app, script)
    hit = selected[0]
    clips = sorted(tmp_path.glob("bouncing_ball_*.mp4"))
    assert len(clips) == 2, notes
    assert clips[0].name == f"bouncing_ball_{hit.start_s:06.1f}-{hit.end_s:06.1f}-2.mp4"
    with av.open(str(clips[1])) as box:
        frames = list(box.decode(video=0))
        assert box.streams.audio, "the clip keeps the sound track"
    fps = 24  # write_video's rate
    assert abs(len(frames) / fps - (hit.end_s - hit.start_s)) <= 1 / fps + 1e-6


def test_x_on_a_picture_says_there_is_nothing_to_cut(engine: SearchEngine, tmp_path: Path) -> None:
    notes: list[str] = []
    app = BrowseApp(engine, query="sunset m:image", clip_dir=tmp_path)
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("x")
        await settle(pilot)

    drive(app, script)
    assert notes == ["only video and audio results have a span to cut"]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ relevance and moments


def test_the_default_cut_off_shows_strong_results_and_a_shows_them_all(
    library: Library,
) -> None:
    engine = SearchEngine(library, Config(), FakeEncoders())  # the packaged cut-off
    app = BrowseApp(engine, query="dog")
    cut = engine.search(parse_query(QueryRequest(texts=("dog",), limit=50)))

    async def script(pilot: Pilot[None]) -> None:
        table = app.query_one(ResultsTable)
        assert [h.path for h in rows(app)] == [h.path for h in cut]
        assert len(rows(app)) < 7, "the sample library has results below the cut-off"
        strong = "no strong result" if cut[0].weak else f"{len(cut)} strong result"
        assert strong in status(app) and "(a: all)" in status(app)
        for number, hit in enumerate(rows(app)):
            cells = [str(c) for c in table.get_row(str(number))]
            assert cells[0] == f"{hit.relevance:.1f}"
            assert ("(weak)" in cells[1]) == hit.weak
        await pilot.press("a")
        await settle(pilot)
        assert len(rows(app)) == 7 and "7 results" in status(app)
        assert not any(h.weak for h in rows(app))
        await pilot.press("a")
        await settle(pilot)
        assert [h.path for h in rows(app)] == [h.path for h in cut]

    drive(app, script)


def test_a_video_preview_shows_its_moment_and_both_stream_scores(engine: SearchEngine) -> None:
    app = BrowseApp(engine, query="dog m:video")

    async def script(pilot: Pilot[None]) -> None:
        hit = app.query_one(ResultsTable).selected
        assert hit is not None and hit.path.endswith(".mp4") and hit.moments
        best = hit.moments[0]
        assert best.picture_score is not None and best.sound_score is not None
        facts = " ".join(str(app.query_one("#preview-facts").render()).split())
        assert f"relevance {hit.relevance:.2f}" in facts
        assert f"moment {clock(best.start_s)}-{clock(best.end_s)}" in facts
        assert f"picture {best.picture_score:.4f} (relevance" in facts
        assert f"sound {best.sound_score:.4f} (relevance" in facts
        table = app.query_one(ResultsTable)
        time_cell = str(table.get_row("0")[2])
        assert time_cell.startswith(f"{clock(best.start_s)}-{clock(best.end_s)} ")
        assert time_cell.rsplit(maxsplit=1)[-1] in ("P", "S", "P+S")

    drive(app, script)
