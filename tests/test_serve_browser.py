"""The web page of `lbsearch serve` in a real Chromium (the system's package, driven by
Playwright): search, thumbnails, a video that plays its best moment (a timeline marks it, a
button downloads its clip), keyboard use, search by dropping a file, and a phone-width layout.

Skipped where no Chromium is installed (`apt-get install chromium`; CI does it in .ci/run).
Set LBSEARCH_SCREENSHOTS=DIR to keep the screenshots (docs/serve-*.png are made this way).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import Running, index_folder, serving

from lbsearch.testing.fake_encoders import FakeEncoders
from lbsearch.testing.samples import write_audio, write_sample_media, write_video
from lbsearch.testing.windows import window_video

CHROMIUM = os.environ.get("LBSEARCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium installed"),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("serve-browser")
    write_sample_media(base / "media")
    write_video(base / "media" / "long_walk.mp4", seconds=32.0)  # segments 0-10, 10-20, 20-32
    write_audio(base / "media" / "long_tone.wav", seconds=32.0, tone_hz=440.0)  # 3+ windows
    # a colour per 10 s window: its windows differ, so a moment is one window, not the file
    window_video(base / "media" / "colours.mp4", 60, colours=range(6), tones=range(6))
    index_folder(base / "media", base / "library", FakeEncoders())
    return base / "media", base / "library"


@pytest.fixture(scope="module")
def running(library: tuple[Path, Path]) -> Iterator[Running]:
    with serving(library[1]) as run:
        yield run


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 800},
            # the page's CSP allows no eval, which Playwright's string predicates use; the
            # policy itself is checked in test_serve_security.py
            bypass_csp=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors: {errors}"


def _screenshot(page: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("LBSEARCH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"serve-{name}.png"))
    assert (folder / f"serve-{name}.png").stat().st_size > 5000


def _search(page: Any, text: str) -> None:
    page.fill("#q", text)
    page.press("#q", "Enter")
    page.wait_for_function("document.querySelector('#message').textContent.includes('results')")


def _thumbnails_loaded(page: Any) -> bool:
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete)", timeout=30000
    )
    loaded: bool = page.evaluate(
        "[...document.querySelectorAll('#results img')].every(i => i.naturalWidth > 0)"
    )
    return loaded


def _late_moment(
    base: str, name: str, words: tuple[str, ...], field: str = "start_s"
) -> tuple[str, dict[str, Any]]:
    """A query whose result `name` (a video) has its best segment (`field` "moment": its best
    moment) after 0 s, and that result (the fake encoders are deterministic)."""
    with httpx.Client(base_url=base) as http:
        for word in words:
            rows = http.get("/api/search", params={"q": word, "m": "video"}).json()["results"]
            late = [
                r
                for r in rows
                if r["path"].endswith(name)
                and (r["moments"][0] if field == "moment" else r)["start_s"] > 0
            ]
            if late:
                return word, late[0]
    pytest.fail(f"no query puts a late segment of {name} first")


WORDS = ("walk", "ball", "bounce", "red", "motion", "sport", "play", "run", "game")
MORE_WORDS = (*WORDS, "sky", "dog", "car", "tree", "sea", "city", "bird", "rain", "snow")


def test_search_shows_thumbnails_and_plays_video_from_the_segment_start(
    page: Any, running: Running, tmp_path: Path
) -> None:
    page.goto(running.base + "/")
    page.wait_for_selector("#chips .chip")
    chips = page.locator("#chips .chip").all_inner_texts()
    assert set(chips) == {"image", "video", "audio", "depth", "thermal"}
    _search(page, "a sunny beach")
    assert page.locator(".card").count() >= 1  # what the relevance cut-off keeps
    assert _thumbnails_loaded(page)
    _screenshot(page, "desktop", tmp_path)

    word, row = _late_moment(running.base, "long_walk.mp4", WORDS)
    page.click("#chips .chip:text-is('video')")
    _search(page, word)
    first = page.locator(".card", has_text="long_walk.mp4").first
    assert first.locator(".badge").first.text_content() == "video"
    assert first.locator(".span").inner_text().startswith(f"00:{int(row['start_s']):02d}")
    start = float(row["moments"][0]["start_s"])  # the page plays the best moment (0 s here:
    # the bouncing ball looks alike all through, so its windows merge into one moment)
    first.locator(".thumb").click()
    page.wait_for_selector("dialog[open] video")
    page.wait_for_function(
        f"(() => {{ const v = document.querySelector('dialog video');"
        f" return v.readyState >= 2 && v.currentTime >= {start} - 0.05; }})()",
        timeout=30000,
    )
    at = page.evaluate("document.querySelector('dialog video').currentTime")
    assert start - 0.05 <= at < start + 2.0, f"playback starts at {at}, not at {start}"
    page.wait_for_function(
        f"document.querySelector('dialog video').currentTime > {at} + 0.2", timeout=15000
    )
    _screenshot(page, "viewer", tmp_path)
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog[open]", state="detached")
    page.wait_for_selector("dialog video", state="detached")  # closing stops and drops it


def test_keyboard_navigation(page: Any, running: Running) -> None:
    page.goto(running.base + "/?box=a+sunny+beach")
    page.wait_for_selector(".card")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.classList.contains('thumb')")
    page.keyboard.press("ArrowRight")
    title = page.evaluate("document.activeElement.title")
    assert title == page.locator(".thumb").nth(1).get_attribute("title")
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog[open]")
    assert page.locator("#viewer-facts").inner_text().startswith(title)
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog[open]", state="detached")


def test_dropping_a_file_searches_by_example(
    page: Any, running: Running, library: tuple[Path, Path]
) -> None:
    page.goto(running.base + "/")
    page.wait_for_selector("#chips .chip")
    data = base64.b64encode((library[0] / "green_field.png").read_bytes()).decode()
    transfer = page.evaluate_handle(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const t = new DataTransfer();
            t.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
            return t;
        }""",
        data,
    )
    page.dispatch_event("body", "dragenter", {"dataTransfer": transfer})
    assert page.locator("#drop").is_visible()
    page.dispatch_event("body", "drop", {"dataTransfer": transfer})
    page.wait_for_function("document.querySelector('#message').textContent.includes('dropped')")
    names = page.locator(".card .name").all_inner_texts()
    assert names and "green_field.png" not in names, "the example itself never comes back"
    assert not page.locator("#drop").is_visible()


def test_the_example_button_searches_by_an_uploaded_file(
    page: Any, running: Running, library: tuple[Path, Path]
) -> None:
    page.goto(running.base + "/")
    page.wait_for_selector("#chips .chip")
    with page.expect_file_chooser() as chooser:
        page.focus("#example-button")
        page.keyboard.press("Enter")  # reachable without a mouse
    chooser.value.set_files(str(library[0] / "whistle.wav"))
    page.wait_for_function("document.querySelector('#message').textContent.includes('whistle')")
    names = page.locator(".card .name").all_inner_texts()
    assert names and "whistle.wav" not in names


def test_similar_on_a_result(page: Any, running: Running) -> None:
    page.goto(running.base + "/?box=a+sunny+beach")
    page.wait_for_selector(".card")
    name = page.locator(".card .name").first.inner_text()
    page.locator(".card .similar").first.click()
    page.wait_for_function("document.querySelector('#message').textContent.includes('like')")
    assert name not in page.locator(".card .name").all_inner_texts()


def test_phone_width_layout(browser_context: Any, running: Running, tmp_path: Path) -> None:
    phone = browser_context.new_page()
    try:
        phone.set_viewport_size({"width": 390, "height": 844})
        phone.goto(running.base + "/?box=a+sunny+beach")
        phone.wait_for_selector(".card")
        _thumbnails_loaded(phone)
        wide = phone.evaluate("document.documentElement.scrollWidth")
        assert wide <= 390, "nothing sticks out sideways"
        boxes = [phone.locator(".card").nth(i).bounding_box() for i in range(2)]
        assert boxes[0]["y"] == boxes[1]["y"] and boxes[0]["width"] > 150  # two columns
        _screenshot(phone, "phone", tmp_path)
    finally:
        phone.close()


def _word_with_a_late_audio_segment(base: str) -> tuple[str, float]:
    with httpx.Client(base_url=base) as http:
        for word in ("tone", "hum", "beep", "note", "sound", "music", "sing", "ring", "buzz"):
            rows = http.get("/api/search", params={"q": word, "m": "audio"}).json()["results"]
            late = [r for r in rows if r["path"].endswith("long_tone.wav") and r["start_s"] > 0]
            if late and rows[0] is late[0]:  # the page plays the best moment
                return word, float(late[0]["moments"][0]["start_s"])
    pytest.fail("no query puts a late segment of long_tone.wav first")


def test_audio_plays_from_its_segment(page: Any, running: Running) -> None:
    """The player, not the box around it, was told to play: `media.play is not a function`."""
    word, start = _word_with_a_late_audio_segment(running.base)
    page.goto(running.base + "/")
    page.wait_for_selector("#chips .chip")
    page.click("#chips .chip:text-is('audio')")
    _search(page, word)
    page.locator(".card .thumb").first.click()
    page.wait_for_selector("dialog[open] audio")
    page.wait_for_function(
        f"(() => {{ const a = document.querySelector('dialog audio');"
        f" return a.readyState >= 2 && a.currentTime >= {start} - 0.05; }})()",
        timeout=30000,
    )
    at = page.evaluate("document.querySelector('dialog audio').currentTime")
    assert start - 0.05 <= at < start + 2.0


def test_an_error_replaces_the_results_and_counts_are_words(page: Any, running: Running) -> None:
    page.goto(running.base + "/?box=a+sunny+beach&limit=1")
    page.wait_for_selector(".card")
    message = page.locator("#message").inner_text()
    assert "1 results" not in message, message
    assert message.startswith(("1 strong result for", "Nothing cleared the bar")), message
    assert "1 weak result shown" in message or message.startswith("1 strong result for"), message
    page.fill("#q", "dog m:smell")
    page.press("#q", "Enter")
    page.wait_for_function("document.querySelector('#message').classList.contains('error')")
    assert page.locator(".card").count() == 0, "an error leaves no old results under it"


def test_the_page_has_a_favicon(page: Any, running: Running) -> None:
    page.goto(running.base + "/")
    href = page.get_attribute("link[rel=icon]", "href")
    assert href
    with httpx.Client(base_url=running.base) as http:
        icon = http.get(href)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")


def test_the_page_counts_strong_results_and_shows_more_on_request(
    page: Any, running: Running
) -> None:
    page.goto(running.base + "/")
    page.wait_for_selector("#chips .chip")
    page.fill("#q", "a sunny beach")
    page.press("#q", "Enter")
    page.wait_for_selector("#more")
    message = page.locator("#message").text_content() or ""
    assert "strong result" in message or "weak result" in message
    first = page.locator(".card").count()
    with httpx.Client(base_url=running.base) as http:
        everything = http.get(
            "/api/search", params={"box": "a sunny beach", "all": "1", "limit": "40"}
        )
    wanted = len(everything.json()["results"])
    assert wanted >= first
    page.click("#more")
    page.wait_for_function(
        "document.querySelector('#message').textContent.includes('strong and weak')"
    )
    assert page.locator(".card").count() == wanted
    assert page.locator("#more").count() == 0  # everything is shown: nothing more to ask
    weak = [r for r in everything.json()["results"] if r["weak"]]
    assert page.locator(".card.weak").count() == len(weak)


def test_a_video_result_plays_its_moment_on_a_timeline_and_downloads_its_clip(
    page: Any, running: Running
) -> None:
    """Clicking a video result seeks to its best moment's start; the timeline under the player
    marks the moment's span over the file's duration; playback stops at the moment's end; the
    span plays the moment again; Download fetches the moment's clip under its file and span."""
    word, row = _late_moment(running.base, "colours.mp4", MORE_WORDS, "moment")
    moment = row["moments"][0]
    start, end = float(moment["start_s"]), float(moment["end_s"])
    assert 0 < start < end < 60
    page.goto(running.base + "/")
    page.wait_for_selector("#chips .chip")
    page.click("#chips .chip:text-is('video')")
    _search(page, word)
    page.locator(".card", has_text="colours.mp4").first.locator(".thumb").click()
    page.wait_for_selector("dialog[open] video")
    page.wait_for_function(
        f"(() => {{ const v = document.querySelector('dialog video');"
        f" return v.readyState >= 2 && v.currentTime >= {start} - 0.05; }})()",
        timeout=30000,
    )
    at = page.evaluate("document.querySelector('dialog video').currentTime")
    assert start - 0.05 <= at < start + 2.0, f"playback starts at {at}, not at the moment {start}"

    spans = page.locator("#viewer-timeline .moment")
    assert spans.count() == len(row["moments"]) == 1
    assert page.locator("#viewer-timeline").is_visible()
    duration = page.evaluate("document.querySelector('dialog video').duration")
    left = page.evaluate(
        "parseFloat(document.querySelector('#viewer-timeline .moment').style.left)"
    )
    width = page.evaluate(
        "parseFloat(document.querySelector('#viewer-timeline .moment').style.width)"
    )
    assert left == pytest.approx(100 * start / duration, abs=0.5)
    assert width == pytest.approx(100 * (end - start) / duration, abs=0.5)
    track = page.locator("#viewer-timeline .track").bounding_box()
    drawn = spans.first.bounding_box()
    assert drawn["x"] == pytest.approx(track["x"] + track["width"] * start / duration, abs=2)

    # near the end of the moment: the player stops there by itself
    page.evaluate(f"document.querySelector('dialog video').currentTime = {end} - 0.6")
    page.wait_for_function("document.querySelector('dialog video').paused", timeout=15000)
    stopped = page.evaluate("document.querySelector('dialog video').currentTime")
    assert end - 0.1 <= stopped <= end + 0.3, f"stopped at {stopped}, the moment ends at {end}"

    spans.first.click()  # the span plays its moment again, from its start
    page.wait_for_function(
        f"(() => {{ const v = document.querySelector('dialog video');"
        f" return !v.paused && v.currentTime >= {start} - 0.05 && v.currentTime < {start} + 2; }})()",
        timeout=15000,
    )

    with page.expect_download(timeout=60000) as download:
        page.click("#viewer-download")
    name = download.value.suggested_filename
    assert name == f"colours_{start:06.1f}-{end:06.1f}.mp4", name
    saved = download.value.path()
    assert saved is not None and Path(saved).stat().st_size > 1000
    page.wait_for_function("document.querySelector('#viewer-note').textContent.includes('Saved')")
